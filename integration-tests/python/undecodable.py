"""Sends requests that do not decode (a string field that is not UTF-8, a truncated message)
as raw bytes with Python grpcio, and checks each is INVALID_ARGUMENT, not INTERNAL.

Usage: undecodable.py ADDRESS PROTO_ROOT
"""

import sys

import grpc
from hubdir_client import fail

CASES = [
    # GetStatusRequest.name (field 1, a string) holding the bytes FF FE.
    ("not UTF-8", b"\x0a\x02\xff\xfe"),
    # Field 1 announces 10 bytes and ends after 1.
    ("truncated", b"\x0a\x0a\x41"),
]


def main():
    channel = grpc.insecure_channel(sys.argv[1])
    call = channel.unary_unary("/hubdir.v1.ConnectivityService/GetStatus")
    for what, body in CASES:
        try:
            call(body, timeout=10)
            fail(f"{what}: accepted")
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.INVALID_ARGUMENT:
                fail(f"{what}: {err.code()} {err.details()}")
            print(f"{what}: INVALID_ARGUMENT ({err.details()})")


if __name__ == "__main__":
    main()
