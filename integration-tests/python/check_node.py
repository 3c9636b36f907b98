"""Checks a running hubdir node with Python grpcio, a gRPC stack hubdir did not write.

Usage: check_node.py ADDRESS PROTO_ROOT EXPECTED_SERVICES [--demo]

EXPECTED_SERVICES is a comma-separated list of the hubdir services that must be mounted;
health and reflection are always expected. With --demo, the node must hold demo sites.
HUBDIR_TOKEN holds a bearer token with the sites.read scope.
Prints one line per check; exits non-zero at the first failure.
"""

import os
import sys
import tempfile

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from hubdir_client import bearer, fail, load_stubs

ALWAYS = {
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
}


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


def reflected_services_v1(channel):
    """The same question of reflection v1, which grpcurl and newer clients use. grpcio ships
    only v1alpha's classes; v1's messages are the same fields under another package, so those
    classes serve, called on v1's method."""
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    response = next(call(iter([request]), timeout=10))
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
    services_v1 = reflected_services_v1(channel)
    if services_v1 != expected:
        fail(f"reflection v1 lists {sorted(services_v1)}, expected exactly {sorted(expected)}")
    print(f"reflection v1: exactly {len(services_v1)} services")

    if "hubdir.v1.RegistryService" not in expected:
        return
    token = bearer(os.environ["HUBDIR_TOKEN"])
    with tempfile.TemporaryDirectory() as out_dir:
        stubs = load_stubs(proto_root, out_dir)
        registry_pb2 = stubs["registry"]
        registry = stubs["registry_grpc"].RegistryServiceStub(channel)

        try:
            registry.ListSites(registry_pb2.ListSitesRequest(page_size=1), timeout=10)
            fail("an anonymous ListSites was answered")
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNAUTHENTICATED:
                fail(f"anonymous ListSites gave {err.code()}, expected UNAUTHENTICATED")
        print("ListSites: anonymous caller is UNAUTHENTICATED")

        if demo:
            page = registry.ListSites(registry_pb2.ListSitesRequest(page_size=50), metadata=token, timeout=10)
            if len(page.sites) != 50 or not page.next_page_token:
                fail(f"ListSites returned {len(page.sites)} sites, token {page.next_page_token!r}")
            first = page.sites[0]
            again = registry.GetSite(registry_pb2.GetSiteRequest(name=first.name), metadata=token, timeout=10)
            if again != first:
                fail("GetSite disagrees with ListSites")
            second = registry.ListSites(
                registry_pb2.ListSitesRequest(page_size=50, page_token=page.next_page_token), metadata=token,
                timeout=10)
            if second.sites[0].name <= page.sites[-1].name:
                fail("the second page does not follow the first")
            print(f"ListSites/GetSite: demo site {first.name} ({first.display_name}) reads back")

        if demo and "hubdir.v1.DiscoveryService" in expected:
            site_pb2, discovery_pb2 = stubs["site"], stubs["discovery"]
            discovery = stubs["discovery_grpc"].DiscoveryServiceStub(channel)
            harare = site_pb2.LatLng(latitude=-17.8292, longitude=31.0522)
            found = discovery.FindNearest(discovery_pb2.FindNearestRequest(location=harare, max_results=5), timeout=10)
            distances = [r.distance_meters for r in found.results]
            if len(distances) != 5 or distances != sorted(distances) or distances[0] > 30_000:
                fail(f"FindNearest from Harare gave distances {distances}")
            print(f"FindNearest: 5 demo sites, the nearest {distances[0]:.0f} m from Harare")

            # Every demo site in the nearest one's resolution-7 cell, two at a time. The parent
            # is the index with resolution 7 and the finer digits unused (7).
            stored = int(found.results[0].site.h3_cell, 16)
            cell = format((stored & ~(0xF << 52)) | (7 << 52) | ((1 << 24) - 1), "x")
            in_cell, next_page = [], ""
            while True:
                page = discovery.ListSitesInCell(
                    discovery_pb2.ListSitesInCellRequest(h3_cell=cell, page_size=2,
                                                         page_token=next_page), timeout=10)
                in_cell += [s.name for s in page.sites]
                next_page = page.next_page_token
                if not next_page:
                    break
            if found.results[0].site.name not in in_cell or in_cell != sorted(set(in_cell)):
                fail(f"ListSitesInCell did not page through the nearest site's cell: {in_cell}")
            print(f"ListSitesInCell: {len(in_cell)} sites in the nearest site's resolution-7 cell")

            city = found.results[0].site.address.locality
            hits = discovery.SearchSites(discovery_pb2.SearchSitesRequest(query=city.lower(), country_code="ZW"),
                                         timeout=10)
            if not hits.sites or any(city not in s.display_name + s.address.locality for s in hits.sites):
                fail(f"SearchSites for {city!r} found {[s.display_name for s in hits.sites]}")
            print(f"SearchSites: {len(hits.sites)} sites for {city!r}")

        try:
            registry.GetSite(registry_pb2.GetSiteRequest(name="sites/ZW/not-a-name"), metadata=token, timeout=10)
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
