"""Checks a node's connection bounds from outside, with raw sockets and Python grpcio.

Usage: connection_limits.py ADDRESS PROTO_ROOT MAX_CONNECTIONS

The node must run with `server.max_connections = MAX_CONNECTIONS` and a short
`server.handshake_timeout_secs`. Prints one line per check; exits non-zero at the first failure.
"""

import socket
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hubdir_client import fail


def check(channel, timeout):
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout).status


def closed_by_server(sock, within):
    """Whether the server closes `sock` (end of stream or a reset) within `within` seconds;
    whatever it sends first (its HTTP/2 settings) is read and skipped."""
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def main():
    address, _proto, cap = sys.argv[1], sys.argv[2], int(sys.argv[3])
    host, port = address.rsplit(":", 1)
    # One client connected before the flood, as a load balancer's health checker would be.
    kept = grpc.insecure_channel(address)
    if check(kept, 10) != health_pb2.HealthCheckResponse.SERVING:
        fail("not SERVING before the flood")

    # Sockets that never send the HTTP/2 preface: the cap's worth, then as many again.
    idle = [socket.create_connection((host, int(port)), 5) for _ in range(2 * cap)]
    # Past the cap a new connection is closed at once (well before the handshake timeout).
    over = [s for s in idle[cap:] if closed_by_server(s, 1.0)]
    if len(over) < cap - 1:
        fail(f"only {len(over)} of the {cap} connections past the cap were closed at once")
    print(f"past the cap: {len(over)} of {cap} new connections closed at once")

    # The connection held before the flood still answers while the cap holds.
    if check(kept, 10) != health_pb2.HealthCheckResponse.SERVING:
        fail("the existing health client stopped being answered")
    print("health on an existing connection: SERVING while the cap holds")

    # Silent connections are closed after the handshake timeout, freeing the room; so are
    # those that sent one byte of the preface and stopped.
    silent = [s for s in idle[:cap] if s not in over]
    for s in silent[::2]:
        s.sendall(b"P")
    closed = sum(closed_by_server(s, 30.0) for s in silent)
    if closed < len(silent):
        fail(f"{len(silent) - closed} silent connections were never closed")
    print(f"silent connections closed after the handshake timeout: {closed}")
    fresh = grpc.insecure_channel(address)
    if check(fresh, 10) != health_pb2.HealthCheckResponse.SERVING:
        fail("a new client is not answered after the silent connections went")
    print("health on a new connection: SERVING")
    for s in idle:
        s.close()


if __name__ == "__main__":
    main()
