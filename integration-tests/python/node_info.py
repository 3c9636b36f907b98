"""Prints a node's GetNodeInfo as one line per fact, for the Rust test to check.

Usage: node_info.py ADDRESS PROTO_ROOT
HUBDIR_TOKEN holds a federation.sync token.
"""

import os
import sys
import tempfile

import grpc
from hubdir_client import bearer, fail, load_stubs


def main():
    address, proto_root = sys.argv[1:3]
    with tempfile.TemporaryDirectory() as out:
        stubs = load_stubs(proto_root, out)
        federation = stubs["federation_grpc"].FederationServiceStub(grpc.insecure_channel(address))
        info = federation.GetNodeInfo(stubs["federation"].GetNodeInfoRequest(),
                                      metadata=bearer(os.environ["HUBDIR_TOKEN"]), timeout=10)
        if not info.keys:
            fail("GetNodeInfo lists no key")
        print(f"node_id {info.node_id}")
        for key in info.keys:
            current = "current" if not key.HasField("valid_until") else "retired"
            print(f"key {key.key_id} {len(key.public_key)} bytes {current}")
        print(f"origins_served {','.join(info.origins_served)}")
        print(f"version {info.version}")


if __name__ == "__main__":
    main()
