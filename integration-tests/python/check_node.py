"""Checks a running hubdir node with Python grpcio, a gRPC stack hubdir did not write.

Usage: check_node.py ADDRESS PROTO_ROOT EXPECTED_SERVICES [--demo]

EXPECTED_SERVICES is a comma-separated list of the hubdir services that must be mounted;
health and reflection are always expected. With --demo, the node must hold demo sites.
Prints one line per check; exits non-zero at the first failure.
"""

import importlib
import subprocess
import sys
import tempfile

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

ALWAYS = {
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
}


def fail(message):
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def generate_stubs(proto_root, out_dir):
    files = [f"hubdir/v1/{name}.proto" for name in ("site", "registry", "discovery", "connectivity", "federation")]
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_root}", f"--python_out={out_dir}",
         f"--grpc_python_out={out_dir}", *files],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        fail(f"protoc could not compile the contract: {result.stderr}")
    sys.path.insert(0, out_dir)


def wait_serving(channel):
    # Watch streams every status change: no polling, no sleeps.
    stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=20)
    for update in stream:
        if update.status == health_pb2.HealthCheckResponse.SERVING:
            stream.cancel()
            return
    fail("health never reported SERVING")


def reflected_services(channel):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    response = next(stub.ServerReflectionInfo(iter([request]), timeout=10))
    return {s.name for s in response.list_services_response.service}


def main():
    address, proto_root, expected = sys.argv[1], sys.argv[2], sys.argv[3]
    demo = "--demo" in sys.argv[4:]
    expected = {f"hubdir.v1.{name}" for name in expected.split(",") if name} | ALWAYS
    channel = grpc.insecure_channel(address)

    wait_serving(channel)
    print("health: SERVING")

    services = reflected_services(channel)
    if services != expected:
        fail(f"reflection lists {sorted(services)}, expected exactly {sorted(expected)}")
    print(f"reflection: exactly {len(services)} services")

    if "hubdir.v1.RegistryService" not in expected:
        return
    with tempfile.TemporaryDirectory() as out_dir:
        generate_stubs(proto_root, out_dir)
        registry_pb2 = importlib.import_module("hubdir.v1.registry_pb2")
        registry_grpc = importlib.import_module("hubdir.v1.registry_pb2_grpc")
        registry = registry_grpc.RegistryServiceStub(channel)

        if demo:
            page = registry.ListSites(registry_pb2.ListSitesRequest(page_size=50), timeout=10)
            if len(page.sites) != 50 or not page.next_page_token:
                fail(f"ListSites returned {len(page.sites)} sites, token {page.next_page_token!r}")
            first = page.sites[0]
            again = registry.GetSite(registry_pb2.GetSiteRequest(name=first.name), timeout=10)
            if again != first:
                fail("GetSite disagrees with ListSites")
            second = registry.ListSites(
                registry_pb2.ListSitesRequest(page_size=50, page_token=page.next_page_token), timeout=10)
            if second.sites[0].name <= page.sites[-1].name:
                fail("the second page does not follow the first")
            print(f"ListSites/GetSite: demo site {first.name} ({first.display_name}) reads back")

        try:
            registry.GetSite(registry_pb2.GetSiteRequest(name="sites/ZW/not-a-name"), timeout=10)
            fail("a malformed name was accepted")
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.INVALID_ARGUMENT:
                fail(f"malformed name gave {err.code()}, expected INVALID_ARGUMENT")
            status = rpc_status.from_call(err)
            fields = []
            for detail in status.details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    fields += [v.field for v in bad.field_violations]
            if fields != ["name"]:
                fail(f"field violations {fields}, expected ['name']")
        print("GetSite: malformed name is INVALID_ARGUMENT with a BadRequest naming 'name'")


if __name__ == "__main__":
    main()
