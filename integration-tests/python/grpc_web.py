"""Checks a node's doors for browsers and slow links, with clients that are not hubdir's:
gRPC-Web over HTTP/1.1 (http.client, framing by hand as a browser's grpc-web library does),
CORS preflights, gzip both ways (grpcio), a gzip bomb, and the BASIC view's size.

Usage: grpc_web.py ADDRESS PROTO_ROOT ALLOWED_ORIGIN
Environment: HUBDIR_TOKEN, a token with discovery.read.
Prints one line per check; exits non-zero on the first failure.
"""

import base64
import gzip
import http.client
import os
import struct
import sys
import tempfile

import grpc
from hubdir_client import bearer, fail, load_stubs

HARARE = (-17.8292, 31.0522)
K = 5


def frames(body):
    """Splits a gRPC(-Web) body into (flag, payload) frames."""
    out, i = [], 0
    while i < len(body):
        flag, length = struct.unpack(">BI", body[i:i + 5])
        out.append((flag, body[i + 5:i + 5 + length]))
        i += 5 + length
    return out


def grpc_web_call(address, method, message, token, accept_gzip=False, text=False, origin="http://maps.example"):
    """One unary call over HTTP/1.1 as gRPC-Web; returns (response headers, frames, raw body)."""
    host, port = address.rsplit(":", 1)
    framed = struct.pack(">BI", 0, len(message)) + message
    headers = {
        "content-type": "application/grpc-web-text" if text else "application/grpc-web+proto",
        "accept": "application/grpc-web-text" if text else "application/grpc-web+proto",
        "x-grpc-web": "1",
        "origin": origin,
        "authorization": f"Bearer {token}",
    }
    if accept_gzip:
        headers["grpc-accept-encoding"] = "gzip"
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("POST", method, body=base64.b64encode(framed) if text else framed, headers=headers)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        fail(f"gRPC-Web {method}: HTTP {response.status} {body[:200]!r}")
    if text:
        # Each message and the trailers arrive base64-encoded on their own, padding and all:
        # decoded a 4-character group at a time, as a browser's streaming decoder does.
        body = b"".join(base64.b64decode(body[i:i + 4]) for i in range(0, len(body), 4))
    return dict((k.lower(), v) for k, v in response.getheaders()), frames(body), body


def trailers(frames_, headers):
    """The call's status: in the trailer frame, or in the headers of a trailers-only answer."""
    if not frames_:
        return headers
    flag, payload = frames_[-1]
    if not flag & 0x80:
        fail(f"the gRPC-Web answer has no trailer frame: flags {[f for f, _ in frames_]}")
    return dict(line.split(":", 1) for line in payload.decode().strip().split("\r\n") if line)


def preflight(address, origin):
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("OPTIONS", "/hubdir.v1.DiscoveryService/FindNearest", headers={
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,x-grpc-web,authorization",
    })
    response = connection.getresponse()
    response.read()
    return response.status, dict((k.lower(), v) for k, v in response.getheaders())


def main():
    address, proto_root, allowed = sys.argv[1:4]
    token = os.environ["HUBDIR_TOKEN"]
    with tempfile.TemporaryDirectory() as out:
        stubs = load_stubs(proto_root, out)
        site_pb2, discovery_pb2 = stubs["site"], stubs["discovery"]

        def request(view):
            return discovery_pb2.FindNearestRequest(
                location=site_pb2.LatLng(latitude=HARARE[0], longitude=HARARE[1]), max_results=K, view=view)

        channel = grpc.insecure_channel(address)
        discovery = stubs["discovery_grpc"].DiscoveryServiceStub(channel)
        full = discovery.FindNearest(request(discovery_pb2.SITE_VIEW_FULL), metadata=bearer(token), timeout=10,
                                     wait_for_ready=True)
        names = [r.site.name for r in full.results]
        if len(names) != K:
            fail(f"FindNearest found {names}")

        # gRPC-Web over HTTP/1.1, binary and text, as a browser sends it.
        for text in (False, True):
            headers, answer, _ = grpc_web_call(address, "/hubdir.v1.DiscoveryService/FindNearest",
                                               request(discovery_pb2.SITE_VIEW_FULL).SerializeToString(), token,
                                               text=text)
            status = trailers(answer, headers).get("grpc-status", "").strip()
            if status != "0":
                fail(f"gRPC-Web (text={text}) ended with grpc-status {status!r}")
            got = discovery_pb2.FindNearestResponse.FromString(answer[0][1])
            if [r.site.name for r in got.results] != names:
                fail(f"gRPC-Web (text={text}) found {[r.site.name for r in got.results]}, gRPC {names}")
            print(f"grpc-web: {'text' if text else 'binary'} over HTTP/1.1 answers as gRPC does "
                  f"({headers.get('content-type')})")

        # An error keeps its code and details through gRPC-Web.
        bad = discovery_pb2.FindNearestRequest(location=site_pb2.LatLng(latitude=95, longitude=31))
        headers, answer, _ = grpc_web_call(address, "/hubdir.v1.DiscoveryService/FindNearest", bad.SerializeToString(),
                                           token)
        t = trailers(answer, headers)
        if t.get("grpc-status", "").strip() != "3" or "grpc-status-details-bin" not in t:
            fail(f"a bad request over gRPC-Web: trailers {t}")
        print("grpc-web: a bad request is INVALID_ARGUMENT with its details")

        # CORS: the configured origin may call; another may not.
        status, headers = preflight(address, allowed)
        if headers.get("access-control-allow-origin") != allowed:
            fail(f"preflight from {allowed}: HTTP {status}, headers {headers}")
        headers, _, _ = grpc_web_call(address, "/hubdir.v1.DiscoveryService/FindNearest",
                                      request(discovery_pb2.SITE_VIEW_BASIC).SerializeToString(), token, origin=allowed)
        if headers.get("access-control-allow-origin") != allowed or "grpc-status" not in headers.get(
                "access-control-expose-headers", ""):
            fail(f"a call from {allowed} may not read its status: {headers}")
        status, headers = preflight(address, "http://elsewhere.example")
        if "access-control-allow-origin" in headers:
            fail(f"preflight from an origin not configured was allowed: {headers}")
        print(f"cors: {allowed} allowed, http://elsewhere.example not")

        # The BASIC view: the fields a list shows, on the wire under 2 KB, and under 1 KB gzipped.
        basic = discovery.FindNearest(request(discovery_pb2.SITE_VIEW_BASIC), metadata=bearer(token), timeout=10)
        if [r.site.name for r in basic.results] != names:
            fail("BASIC found other sites than FULL")
        first = basic.results[0]
        if first.site.operator or first.site.etag or first.site.opening_hours or first.site.HasField("address"):
            fail(f"BASIC carries fields it should not: {first.site}")
        if not (first.site.display_name and first.site.services and first.connectivity.state):
            fail(f"BASIC lacks fields it should carry: {first}")
        frame_plain = 5 + len(basic.SerializeToString())
        frame_full = 5 + len(full.SerializeToString())
        if frame_plain >= 2048:
            fail(f"{K} sites in BASIC take {frame_plain} bytes uncompressed")
        _, answer, _ = grpc_web_call(address, "/hubdir.v1.DiscoveryService/FindNearest",
                                     request(discovery_pb2.SITE_VIEW_BASIC).SerializeToString(), token,
                                     accept_gzip=True)
        flag, payload = answer[0]
        if not flag & 1:
            fail("the server did not compress although the client accepts gzip")
        if discovery_pb2.FindNearestResponse.FromString(gzip.decompress(payload)) != basic:
            fail("the gzipped answer is not the plain one")
        frame_gzip = 5 + len(payload)
        if frame_gzip >= 1024:
            fail(f"{K} sites in BASIC take {frame_gzip} bytes gzipped")
        print(f"view: {K} sites, FULL {frame_full} B, BASIC {frame_plain} B, BASIC gzip {frame_gzip} B (gRPC frames)")

        # gzip from the client is accepted...
        gz = stubs["discovery_grpc"].DiscoveryServiceStub(
            grpc.insecure_channel(address, compression=grpc.Compression.Gzip))
        if [r.site.name for r in gz.FindNearest(request(0), metadata=bearer(token), timeout=10).results] != names:
            fail("a gzipped request found other sites")
        # ...but not past the message limit once inflated: 16 MB of one letter is a few KB gzipped.
        bomb = discovery_pb2.SearchSitesRequest(query="a" * (16 << 20), country_code="ZW")
        try:
            gz.SearchSites(bomb, metadata=bearer(token), timeout=30)
            fail("a 16 MB request inflated from gzip was accepted")
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                fail(f"a gzip bomb got {err.code()}: {err.details()}")
        if len(discovery.FindNearest(request(0), metadata=bearer(token), timeout=10).results) != K:
            fail("the node stopped answering after the gzip bomb")
        print("gzip: requests accepted, a bomb refused (RESOURCE_EXHAUSTED) and the node still answers")


if __name__ == "__main__":
    main()
