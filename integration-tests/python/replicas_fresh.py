"""Writes sites through one process and times how soon each discovery replica finds them.

Usage: replicas_fresh.py REGISTRY_ADDRESS PROTO_ROOT DISCOVERY_ADDRESS...

HUBDIR_TOKEN holds a sites.write token for origin zw, operator "ZW Post". Each of five
sites, created one after another, and then the deletion of the last, must be seen by every
replica (which polls the shared change log every 200 ms) within a generous deadline of the
write being acknowledged; the slowest is printed. A check that succeeds after the deadline
still fails: the deadline is measured after the answer, not before the call.
"""

import os
import sys
import tempfile
import time

import grpc
from hubdir_client import bearer, fail, load_stubs

DEADLINE_S = 10.0


def main():
    registry_address, proto_root, *replicas = sys.argv[1:]
    token = bearer(os.environ["HUBDIR_TOKEN"])
    with tempfile.TemporaryDirectory() as out:
        stubs = load_stubs(proto_root, out)
        site_pb2, registry_pb2, discovery_pb2 = stubs["site"], stubs["registry"], stubs["discovery"]
        registry = stubs["registry_grpc"].RegistryServiceStub(grpc.insecure_channel(registry_address))
        discovery = [stubs["discovery_grpc"].DiscoveryServiceStub(grpc.insecure_channel(a)) for a in replicas]

        def nearest(stub, lat, lng):
            request = discovery_pb2.FindNearestRequest(
                location=site_pb2.LatLng(latitude=lat, longitude=lng), max_results=1)
            results = stub.FindNearest(request, timeout=10, wait_for_ready=True).results
            return results[0].site.name if results else None

        def wait_until(what, check):
            acknowledged = time.monotonic()
            while True:
                seen = check()
                took = time.monotonic() - acknowledged
                if took > DEADLINE_S:
                    fail(f"{what}: not seen within {DEADLINE_S} s of the acknowledgement ({took:.1f} s)")
                if seen:
                    return took
                # Another process's commit: nothing here can wake on it but the replica's poll.
                time.sleep(0.01)

        worst = 0.0
        for i in range(5):
            lat, lng = -17.0 - i, 31.0 + i
            site = site_pb2.Site(
                name=f"sites/zw/replica-{i}", display_name=f"Replica check {i}", kind=site_pb2.KIND_TELECENTRE, operator="ZW Post",
                country_code="ZW", location=site_pb2.LatLng(latitude=lat, longitude=lng),
                time_zone="Africa/Harare")
            created = registry.CreateSite(
                registry_pb2.CreateSiteRequest(site=site),
                metadata=token, timeout=10)
            for n, stub in enumerate(discovery):
                took = wait_until(f"replica {n}, site {created.name}",
                                  lambda: nearest(stub, lat, lng) == created.name)
                worst = max(worst, took)
        registry.DeleteSite(registry_pb2.DeleteSiteRequest(name=created.name), metadata=token, timeout=10)
        for n, stub in enumerate(discovery):
            took = wait_until(f"replica {n}, deletion of {created.name}",
                              lambda: nearest(stub, lat, lng) != created.name)
            worst = max(worst, took)
        print(f"{len(discovery)} replicas saw 5 creations and a deletion; slowest {worst * 1000:.0f} ms")


if __name__ == "__main__":
    main()
