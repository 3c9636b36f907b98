"""Checks the HTTP/JSON API with the standard library's HTTP client: /v1/nearest answers
what gRPC FindNearest answers (grpcio), as proto3 JSON and as GeoJSON; errors are JSON with
the gRPC reasons and field names; answers are gzipped on request; a site read carries an
ETag and honours If-None-Match.

Usage: http_api.py ADDRESS PROTO_ROOT
Environment: HUBDIR_TOKEN, a token with sites.read.
"""

import gzip
import http.client
import json
import os
import sys
import tempfile

import grpc
from hubdir_client import bearer, fail, load_stubs

HARARE = (-17.8292, 31.0522)


def get(address, target, headers=None):
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", target, headers=headers or {})
    response = connection.getresponse()
    body = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def main():
    address, proto_root = sys.argv[1:3]
    token = os.environ["HUBDIR_TOKEN"]
    with tempfile.TemporaryDirectory() as out:
        stubs = load_stubs(proto_root, out)
        site_pb2, discovery_pb2 = stubs["site"], stubs["discovery"]
        discovery = stubs["discovery_grpc"].DiscoveryServiceStub(grpc.insecure_channel(address))
        wifi = site_pb2.SiteFilter(services=[site_pb2.SERVICE_TYPE_FREE_WIFI])
        grpc_answer = discovery.FindNearest(discovery_pb2.FindNearestRequest(
            location=site_pb2.LatLng(latitude=HARARE[0], longitude=HARARE[1]), max_results=4, filter=wifi),
            timeout=10, wait_for_ready=True)
        names = [r.site.name for r in grpc_answer.results]
        query = f"/v1/nearest?lat={HARARE[0]}&lng={HARARE[1]}&k=4&service=free_wifi"

        status, headers, body = get(address, query)
        if headers.get("cache-control") != "no-store":
            fail(f"an answer to a position may be cached: {headers}")
        if status != 200 or headers.get("content-type") != "application/json":
            fail(f"GET {query}: {status} {headers} {body[:300]!r}")
        answer = json.loads(body)
        if [r["site"]["name"] for r in answer["results"]] != names:
            fail(f"JSON found {[r['site']['name'] for r in answer['results']]}, gRPC {names}")
        first = answer["results"][0]
        if "displayName" not in first["site"] or "distanceMeters" not in first:
            fail(f"not the proto3 JSON mapping: {first}")
        if "SERVICE_TYPE_FREE_WIFI" not in first["site"]["services"]:
            fail(f"the service filter did not apply: {first['site']['services']}")
        print(f"json: /v1/nearest answers as FindNearest does ({len(names)} sites, proto3 JSON names)")

        status, headers, body = get(address, query, {"accept": "application/geo+json"})
        collection = json.loads(body)
        if headers.get("content-type") != "application/geo+json" or collection.get("type") != "FeatureCollection":
            fail(f"GeoJSON: {headers} {body[:300]!r}")
        if len(collection["features"]) != len(grpc_answer.results):
            fail(f"{len(collection['features'])} features for {len(grpc_answer.results)} sites")
        for feature, nearby in zip(collection["features"], grpc_answer.results):
            lng, lat = feature["geometry"]["coordinates"]
            if feature["type"] != "Feature" or feature["geometry"]["type"] != "Point":
                fail(f"not an RFC 7946 Feature: {feature}")
            if (lat, lng) != (nearby.site.location.latitude, nearby.site.location.longitude):
                fail(f"GeoJSON coordinates {lng},{lat} are not longitude, latitude of {nearby.site.location}")
            if feature["properties"]["name"] != nearby.site.name or "distanceMeters" not in feature["properties"]:
                fail(f"GeoJSON properties: {feature['properties']}")
        print(f"geojson: a FeatureCollection of {len(collection['features'])} Points, longitude first")

        status, headers, body = get(address, "/v1/nearest?lat=95&lng=31")
        error = json.loads(body)["error"]
        violations = [d for d in error["details"] if d["@type"].endswith("BadRequest")][0]["fieldViolations"]
        reasons = [d["reason"] for d in error["details"] if d["@type"].endswith("ErrorInfo")]
        if status != 400 or error["status"] != "INVALID_ARGUMENT" or violations[0]["field"] != "location.latitude":
            fail(f"a bad position: {status} {error}")
        status, _, body = get(address, "/v1/nearest?lng=x&service=teleport")
        fields = [v["field"] for d in json.loads(body)["error"]["details"] if "fieldViolations" in d
                  for v in d["fieldViolations"]]
        if status != 400 or fields != ["lat", "lng", "service"]:
            fail(f"bad parameters: {status} {fields}")
        print(f"errors: JSON with reason {reasons[0]} and the fields named ({', '.join(fields)})")

        status, headers, body = get(address, query, {"accept-encoding": "gzip"})
        if headers.get("content-encoding") != "gzip" or json.loads(gzip.decompress(body)) != answer:
            fail(f"gzip: {headers}")
        print(f"gzip: {len(body)} bytes for {len(json.dumps(answer))} of JSON")

        target = "/v1/sites/" + names[0].removeprefix("sites/")
        status, _, body = get(address, target)
        if status != 401 or json.loads(body)["error"]["status"] != "UNAUTHENTICATED":
            fail(f"a site read without a token: {status} {body[:200]!r}")
        auth = dict(bearer(token))
        status, headers, body = get(address, target, auth)
        site = json.loads(body)
        etag = headers.get("etag")
        if status != 200 or site["name"] != names[0] or etag != f'W/"{site["etag"]}"':
            fail(f"GET {target}: {status} {headers} {site}")
        status, headers, body = get(address, target, {**auth, "if-none-match": etag})
        if status != 304 or body:
            fail(f"If-None-Match: {status} {body[:100]!r}")
        status, _, _ = get(address, target, {**auth, "if-none-match": '"stale"'})
        if status != 200:
            fail(f"a stale If-None-Match: {status}")
        # The GeoJSON representation has its own tag: the JSON one does not validate it.
        status, headers, _ = get(address, target, {**auth, "if-none-match": etag, "accept": "application/geo+json"})
        if status != 200 or headers.get("etag") == etag:
            fail(f"GeoJSON answered {status} with tag {headers.get('etag')} to the JSON tag {etag}")
        status, _, body = get(address, "/v1/sites/zw/no-such-site", auth)
        if status != 404 or json.loads(body)["error"]["details"][0]["reason"] != "SITE_NOT_FOUND":
            fail(f"a missing site: {status} {body[:300]!r}")
        status, _, body = get(address, "/near?lat=-17.83&lng=31.05&service=teleport&fragment=1")
        if status != 400 or b"service" not in body:
            fail(f"the page with an unknown service: {status} {body[:200]!r}")
        status, headers, body = get(address, "/v1/no-such-door")
        if status != 404 or json.loads(body)["error"]["status"] != "NOT_FOUND":
            fail(f"an unknown path: {status} {headers} {body[:200]!r}")
        print("sites: ETag and If-None-Match (304); 401 without a token; 404 SITE_NOT_FOUND; unknown paths 404; the page refuses an unknown service (400)")


if __name__ == "__main__":
    main()
