"""Prints, for each LAT,LNG given, the name of the nearest site FindNearest returns.

Usage: nearest.py ADDRESS PROTO_ROOT LAT,LNG...
"""

import sys
import tempfile

import grpc
from hubdir_client import load_stubs


def main():
    address, proto_root, *points = sys.argv[1:]
    with tempfile.TemporaryDirectory() as out:
        stubs = load_stubs(proto_root, out)
        site_pb2, discovery_pb2 = stubs["site"], stubs["discovery"]
        discovery = stubs["discovery_grpc"].DiscoveryServiceStub(grpc.insecure_channel(address))
        for point in points:
            lat, lng = (float(x) for x in point.split(","))
            request = discovery_pb2.FindNearestRequest(
                location=site_pb2.LatLng(latitude=lat, longitude=lng), max_results=1)
            results = discovery.FindNearest(request, timeout=10, wait_for_ready=True).results
            print(results[0].site.name if results else "-")


if __name__ == "__main__":
    main()
