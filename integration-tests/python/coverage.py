"""CoverageService on a real node, through Python grpcio: ComputeCoverage and SummarizeCountry
against a computation here from the same files the node imported, and an ONLINE filter that
changes its answer after a connectivity report.

Usage: coverage.py ADDRESS PROTO_ROOT SITES.geojson POPULATION.csv LAYER

SITES.geojson is `hubdir export --format geojson` of the node's database; POPULATION.csv the
GeoNames file imported as LAYER. HUBDIR_TOKEN reads (sites.read); HUBDIR_AGENT_TOKEN reports
for HUBDIR_AGENT_SITE. Prints one line per check.
"""

import csv
import json
import math
import os
import sys
import tempfile
import time

import grpc
from hubdir_client import bearer, fail, load_stubs

ADDRESS, PROTO, SITES, POPULATION, LAYER = sys.argv[1:6]
RADIUS = 6_371_008.8
THRESHOLDS = [1_000.0, 5_000.0, 10_000.0, 25_000.0]


def check(condition, message):
    if not condition:
        fail(message)


def unit(lat, lng):
    lat, lng = math.radians(lat), math.radians(lng)
    return (math.cos(lat) * math.cos(lng), math.cos(lat) * math.sin(lng), math.sin(lat))


def metres(a, b):
    # The angle from the chord, as the node computes it (atan2 of cross and dot products).
    cross = (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])
    return math.atan2(math.sqrt(sum(c * c for c in cross)), sum(x * y for x, y in zip(a, b))) * RADIUS


features = json.load(open(SITES))["features"]
sites = [
    {
        "name": f["properties"]["name"],
        "country": f["properties"]["country_code"],
        "kind": f["properties"]["kind"],
        "services": f["properties"]["services"],
        "open": f["properties"]["status"] == "OPEN",
        "at": unit(f["geometry"]["coordinates"][1], f["geometry"]["coordinates"][0]),
    }
    for f in features
]
places = [
    {"name": r["name"], "country": r["country_code"], "people": int(r["population"]),
     "at": unit(float(r["latitude"]), float(r["longitude"]))}
    for r in csv.DictReader(open(POPULATION, encoding="utf-8"))
]


def expected(country, matching):
    """People within each threshold of the nearest matching site, beyond, and the farthest."""
    helpers = [s for s in sites if s["open"] and matching(s)]
    scope = [p for p in places if country is None or p["country"] == country]
    within, beyond, far = [0] * len(THRESHOLDS), 0, []
    for p in scope:
        d = min((metres(p["at"], s["at"]) for s in helpers), default=None)
        for i, t in enumerate(THRESHOLDS):
            if d is not None and abs(d - t) < 0.01:
                fail(f"{p['name']} lies {d} m away, too close to {t} m to compare")
            within[i] += p["people"] if d is not None and d <= t else 0
        if d is None or d > THRESHOLDS[-1]:
            beyond += p["people"]
            far.append((p["people"], p["name"], d))
    far.sort(key=lambda x: (-x[0], x[1]))
    return sum(p["people"] for p in scope), within, beyond, far


def same(answer, country, matching, what):
    people, within, beyond, far = expected(country, matching)
    check(answer.people == people, f"{what}: {answer.people} people, computed {people}")
    got = [w.people for w in answer.within]
    check(got == within, f"{what}: within {got}, computed {within}")
    check(answer.people_beyond == beyond, f"{what}: beyond {answer.people_beyond}, computed {beyond}")
    check([p.people for p in answer.far_places] == [f[0] for f in far[: len(answer.far_places)]], f"{what}: far places")
    for place, (_, name, d) in zip(answer.far_places, far):
        got = place.distance_meters if place.HasField("distance_meters") else None
        check((got is None) == (d is None) and (d is None or abs(got - d) < 0.5), f"{what}: {name} at {got}, computed {d}")
    return within


with tempfile.TemporaryDirectory() as out_dir:
    s = load_stubs(PROTO, out_dir)
    cov, site_pb2, conn = s["coverage"], s["site"], s["connectivity"]
    channel = grpc.insecure_channel(ADDRESS)
    coverage = s["coverage_grpc"].CoverageServiceStub(channel)
    connectivity = s["connectivity_grpc"].ConnectivityServiceStub(channel)
    reader = bearer(os.environ["HUBDIR_TOKEN"])

    def compute(filter=None, **scope):
        request = cov.ComputeCoverageRequest(population_layer=LAYER, thresholds_meters=THRESHOLDS, top_places=5,
                                             cell_resolution=5, filter=filter, **scope)
        return coverage.ComputeCoverage(request, metadata=reader, timeout=60)

    # Canada, any open site; the world with a service filter.
    answer = compute(country_code="CA")
    within = same(answer, "CA", lambda s: True, "CA")
    check(0 < within[-1] < answer.people, f"CA: the sample does not tell near from far: {within} of {answer.people}")
    check(sum(c.people for c in answer.cells) == answer.people and all(len(c.h3_cell) == 15 for c in answer.cells),
          "CA: cells do not partition the people")
    wifi = site_pb2.SiteFilter(services=[site_pb2.SERVICE_TYPE_PUBLIC_INTERNET])
    world = compute(filter=wifi, world=True)
    same(world, None, lambda s: "PUBLIC_INTERNET" in s["services"], "world, public internet")
    print(f"coverage: CA {answer.people} people, within 25 km {within[-1]}; world with public internet as computed here")

    # SummarizeCountry.
    summary = coverage.SummarizeCountry(cov.SummarizeCountryRequest(country_code="CA", population_layer=LAYER),
                                        metadata=reader, timeout=60)
    open_ca = [x for x in sites if x["country"] == "CA" and x["open"]]
    check(summary.sites == len(open_ca), f"summary: {summary.sites} sites, {len(open_ca)} open in the export")
    check(summary.people == answer.people, "summary: people differ from ComputeCoverage's")
    internet = sum("PUBLIC_INTERNET" in x["services"] for x in open_ca) / len(open_ca)
    check(abs(summary.share_offering_public_internet - internet) < 1e-9, "summary: public internet share")
    check(abs(summary.sites_per_100k_people - len(open_ca) * 1e5 / answer.people) < 1e-6, "summary: per 100k")
    check(summary.share_online_now == 0 and summary.share_people_within_5km_of_connected == 0, "summary: nobody online yet")
    check(not summary.HasField("median_download_mbps"), "summary: a median without measurements")
    print(f"summarize: CA {summary.sites} sites, {summary.sites_per_100k_people:.2f} per 100,000 people")

    # ONLINE: nothing is connected, until an agent reports.
    online = site_pb2.SiteFilter(connectivity_states=[site_pb2.CONNECTIVITY_STATE_ONLINE])
    before = compute(filter=online, country_code="CA")
    check(before.people_beyond == before.people, "online: someone is near a connected help point before any report")
    site = os.environ["HUBDIR_AGENT_SITE"]
    measured = conn.Measurement(site=site, online=True, download_mbps=48.0, idempotency_key="coverage-1")
    measured.observe_time.GetCurrentTime()
    reply = connectivity.ReportStatus(iter([conn.ReportStatusRequest(measurements=[measured])]),
                                      metadata=bearer(os.environ["HUBDIR_AGENT_TOKEN"]), timeout=10)
    check(reply.accepted_count == 1, f"the report was not accepted: {reply}")
    deadline = time.monotonic() + 10
    while True:
        after = compute(filter=online, country_code="CA")
        if after.people_beyond != after.people or time.monotonic() > deadline:
            break
    same(after, "CA", lambda s: s["name"] == site, "CA, online")
    check(after.people_beyond < after.people, "online: the report changed nothing")
    summary = coverage.SummarizeCountry(cov.SummarizeCountryRequest(country_code="CA", population_layer=LAYER),
                                        metadata=reader, timeout=60)
    check(abs(summary.share_online_now - 1 / len(open_ca)) < 1e-9 and summary.median_download_mbps == 48.0,
          f"summary after the report: {summary}")
    print(f"online: after one report, {after.people - after.people_beyond} people within 25 km of a connected help point")

    # Errors: an unknown layer; bad thresholds named.
    try:
        coverage.ComputeCoverage(cov.ComputeCoverageRequest(population_layer="nope", country_code="CA"), metadata=reader, timeout=10)
        fail("an unknown layer answered")
    except grpc.RpcError as err:
        check(err.code() == grpc.StatusCode.NOT_FOUND and "nope" in err.details(), f"unknown layer: {err}")
    try:
        coverage.ComputeCoverage(
            cov.ComputeCoverageRequest(population_layer=LAYER, country_code="CA", thresholds_meters=[5000, 1000]),
            metadata=reader, timeout=10)
        fail("descending thresholds were accepted")
    except grpc.RpcError as err:
        check(err.code() == grpc.StatusCode.INVALID_ARGUMENT and "thresholds_meters" in err.details(), f"thresholds: {err}")
    try:
        coverage.ComputeCoverage(cov.ComputeCoverageRequest(population_layer=LAYER, country_code="CA"), timeout=10)
        fail("an anonymous caller was answered")
    except grpc.RpcError as err:
        check(err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED), f"anonymous: {err}")
    print("errors: LAYER_NOT_FOUND, thresholds_meters named, anonymous refused")
