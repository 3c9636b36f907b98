"""The authorisation matrix: every RPC of hubdir.v1 x every role, against a running node,
with Python grpcio. Each cell's status code must be what the table below says.

Usage: authz_matrix.py ADDRESS PROTO_ROOT [--closed-discovery]

HUBDIR_TOKENS is a JSON object {role: token} for the roles below (anonymous has none).
With --closed-discovery the node runs with auth.anonymous_discovery = false.
HUBDIR_SERVICE_ADDRESSES, if set, is a JSON object {service: address} for nodes that serve
one service each (the split binaries on one database); ADDRESS serves the rest, but for
CoverageService, which only `hubdir serve` mounts: its rows are left out then.

CoverageService is called with a population layer the node does not hold: "allowed" there is
NOT_FOUND (LAYER_NOT_FOUND, answered by the handler once the caller is let in).
"""

import json
import os
import sys
import tempfile

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from hubdir_client import bearer, fail, load_stubs

OK = "OK"
UNAUTH = "UNAUTHENTICATED"
NO_LAYER = "NOT_FOUND"
DENIED = "PERMISSION_DENIED"

ROLES = ["anonymous", "reader", "publisher", "other_operator", "other_origin", "agent", "peer", "searcher", "no_scope"]


def row(anonymous, reader, publisher, other_operator, other_origin, agent, peer, searcher, no_scope):
    return dict(zip(ROLES, [anonymous, reader, publisher, other_operator, other_origin, agent, peer, searcher, no_scope]))


def expected(closed_discovery):
    read = row(UNAUTH, OK, OK, OK, OK, DENIED, DENIED, DENIED, DENIED)
    write = row(UNAUTH, DENIED, OK, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED)
    # The call is accepted, but rows of another operator or origin come back REJECTED.
    batch = row(UNAUTH, DENIED, OK, OK, OK, DENIED, DENIED, DENIED, DENIED)
    if closed_discovery:
        # Readers of the registry may search too; `discovery.read` is the searcher's scope.
        discover = row(UNAUTH, OK, DENIED, DENIED, DENIED, DENIED, DENIED, OK, DENIED)
    else:
        discover = row(*[OK] * 9)
    ministry = row(UNAUTH, OK, OK, OK, OK, DENIED, DENIED, DENIED, DENIED)
    peer = row(UNAUTH, DENIED, DENIED, DENIED, DENIED, DENIED, OK, DENIED, DENIED)
    agent = row(UNAUTH, DENIED, DENIED, DENIED, DENIED, OK, DENIED, DENIED, DENIED)
    if closed_discovery:
        # Readers of the registry (sites.read, or sites.write which reads too).
        coverage = row(UNAUTH, NO_LAYER, NO_LAYER, NO_LAYER, NO_LAYER, DENIED, DENIED, DENIED, DENIED)
    else:
        coverage = row(*[NO_LAYER] * 9)
    return {
        "RegistryService/GetSite": read,
        "RegistryService/ListSites": read,
        "RegistryService/CreateSite": write,
        "RegistryService/UpdateSite": write,
        "RegistryService/DeleteSite": write,
        "RegistryService/BatchUpsertSites": batch,
        "DiscoveryService/FindNearest": discover,
        "DiscoveryService/SearchSites": discover,
        "DiscoveryService/ListSitesInCell": discover,
        "ConnectivityService/ReportStatus": agent,
        "ConnectivityService/GetStatus": discover,
        "ConnectivityService/SummarizeConnectivity": ministry,
        "FederationService/GetNodeInfo": peer,
        "FederationService/Subscribe": peer,
        "FederationService/GetDigest": peer,
        "CoverageService/ComputeCoverage": coverage,
        "CoverageService/SummarizeCountry": coverage,
    }


def main():
    address, proto_root = sys.argv[1], sys.argv[2]
    closed = "--closed-discovery" in sys.argv[3:]
    tokens = json.loads(os.environ["HUBDIR_TOKENS"])
    addresses = json.loads(os.environ.get("HUBDIR_SERVICE_ADDRESSES", "{}"))

    def channel(service):
        return grpc.insecure_channel(addresses.get(service, address))

    with tempfile.TemporaryDirectory() as out_dir:
        s = load_stubs(proto_root, out_dir)
        site_pb2, reg_pb2 = s["site"], s["registry"]
        registry = s["registry_grpc"].RegistryServiceStub(channel("RegistryService"))
        discovery = s["discovery_grpc"].DiscoveryServiceStub(channel("DiscoveryService"))
        connectivity = s["connectivity_grpc"].ConnectivityServiceStub(channel("ConnectivityService"))
        federation = s["federation_grpc"].FederationServiceStub(channel("FederationService"))
        coverage = s["coverage_grpc"].CoverageServiceStub(channel("CoverageService"))
        split = bool(addresses)
        publisher = bearer(tokens["publisher"])

        def site(site_id, operator="ZimPost"):
            return site_pb2.Site(
                name=f"sites/zw/{site_id}", display_name=f"Matrix {site_id}", kind=site_pb2.KIND_TELECENTRE,
                operator=operator, country_code="ZW", time_zone="Africa/Harare",
                location=site_pb2.LatLng(latitude=-17.82, longitude=31.05))

        # Fixtures, written by the publisher: one site to read and update, one per role to delete.
        registry.CreateSite(reg_pb2.CreateSiteRequest(site=site("base")), metadata=publisher, timeout=10)
        for role in ROLES:
            registry.CreateSite(reg_pb2.CreateSiteRequest(site=site(f"del-{role}")), metadata=publisher, timeout=10)

        def calls(role):
            d, c, f, cov = s["discovery"], s["connectivity"], s["federation"], s["coverage"]
            here = site_pb2.LatLng(latitude=-17.8, longitude=31.0)
            # A real measurement of the site the agent token names: the agent's is stored.
            measured = c.Measurement(site="sites/zw/base", online=True, download_mbps=25.0,
                                     idempotency_key=f"matrix-{role}")
            measured.observe_time.GetCurrentTime()
            return {
                "RegistryService/GetSite": lambda md: registry.GetSite(reg_pb2.GetSiteRequest(name="sites/zw/base"), metadata=md, timeout=10),
                "RegistryService/ListSites": lambda md: registry.ListSites(reg_pb2.ListSitesRequest(page_size=5), metadata=md, timeout=10),
                "RegistryService/CreateSite": lambda md: registry.CreateSite(reg_pb2.CreateSiteRequest(site=site(f"new-{role}")), metadata=md, timeout=10),
                "RegistryService/UpdateSite": lambda md: registry.UpdateSite(reg_pb2.UpdateSiteRequest(
                    site=site_pb2.Site(name="sites/zw/base", display_name=f"Updated by {role}"),
                    update_mask={"paths": ["display_name"]}), metadata=md, timeout=10),
                "RegistryService/DeleteSite": lambda md: registry.DeleteSite(reg_pb2.DeleteSiteRequest(name=f"sites/zw/del-{role}"), metadata=md, timeout=10),
                "RegistryService/BatchUpsertSites": lambda md: registry.BatchUpsertSites(iter([reg_pb2.BatchUpsertSitesRequest(sites=[site(f"batch-{role}")])]), metadata=md, timeout=10),
                "DiscoveryService/FindNearest": lambda md: discovery.FindNearest(d.FindNearestRequest(location=here), metadata=md, timeout=10),
                "DiscoveryService/SearchSites": lambda md: discovery.SearchSites(d.SearchSitesRequest(query="library", country_code="ZW"), metadata=md, timeout=10),
                "DiscoveryService/ListSitesInCell": lambda md: discovery.ListSitesInCell(d.ListSitesInCellRequest(h3_cell="87f2a1072ffffff"), metadata=md, timeout=10),
                "ConnectivityService/ReportStatus": lambda md: connectivity.ReportStatus(iter([c.ReportStatusRequest(measurements=[measured])]), metadata=md, timeout=10),
                "ConnectivityService/GetStatus": lambda md: connectivity.GetStatus(c.GetStatusRequest(name="sites/zw/base/connectivity"), metadata=md, timeout=10),
                "ConnectivityService/SummarizeConnectivity": lambda md: connectivity.SummarizeConnectivity(c.SummarizeConnectivityRequest(country_code="ZW", start_time=Timestamp(seconds=0), end_time=Timestamp(seconds=86400 * 300)), metadata=md, timeout=10),
                "FederationService/GetNodeInfo": lambda md: federation.GetNodeInfo(f.GetNodeInfoRequest(), metadata=md, timeout=10),
                "FederationService/Subscribe": lambda md: next(federation.Subscribe(f.SubscribeRequest(), metadata=md, timeout=10)),
                "FederationService/GetDigest": lambda md: federation.GetDigest(f.GetDigestRequest(), metadata=md, timeout=10),
                "CoverageService/ComputeCoverage": lambda md: coverage.ComputeCoverage(cov.ComputeCoverageRequest(population_layer="none", world=True), metadata=md, timeout=10),
                "CoverageService/SummarizeCountry": lambda md: coverage.SummarizeCountry(cov.SummarizeCountryRequest(country_code="ZW", population_layer="none"), metadata=md, timeout=10),
            }

        table = expected(closed)
        if split:
            table = {rpc: cells for rpc, cells in table.items() if not rpc.startswith("CoverageService/")}
        mismatches = []
        cells = 0
        for role in ROLES:
            md = bearer(tokens.get(role))
            for rpc, call in calls(role).items():
                if rpc not in table:
                    continue
                cells += 1
                try:
                    response = call(md)
                    got = OK
                except grpc.RpcError as err:
                    response, got = None, err.code().name
                want = table[rpc][role]
                if got != want:
                    mismatches.append(f"{rpc} as {role}: got {got}, expected {want}")
                if rpc == "ConnectivityService/ReportStatus" and got == OK and response.accepted_count != 1:
                    mismatches.append(f"{rpc} as {role}: the measurement was not stored: {response}")
                if rpc == "RegistryService/BatchUpsertSites" and got == OK:
                    rejected = 0 if role == "publisher" else 1
                    if response.rejected_count != rejected:
                        mismatches.append(f"{rpc} as {role}: {response.rejected_count} rows rejected, expected {rejected}")
        # Refused writes changed nothing: only the publisher's create, update and delete took.
        reader = bearer(tokens["reader"])
        base = registry.GetSite(reg_pb2.GetSiteRequest(name="sites/zw/base"), metadata=reader, timeout=10)
        if base.display_name != "Updated by publisher":
            mismatches.append(f"sites/zw/base is named {base.display_name!r} after the refused updates")
        for role in ROLES:
            for prefix, should_exist in (("new", role == "publisher"), ("del", role != "publisher")):
                try:
                    registry.GetSite(reg_pb2.GetSiteRequest(name=f"sites/zw/{prefix}-{role}"), metadata=reader, timeout=10)
                    exists = True
                except grpc.RpcError as err:
                    if err.code() != grpc.StatusCode.NOT_FOUND:
                        raise
                    exists = False
                if exists != should_exist:
                    mismatches.append(f"sites/zw/{prefix}-{role} exists={exists} after {role}'s attempt")
        if mismatches:
            fail("authorisation matrix:\n  " + "\n  ".join(mismatches))
        print(f"authorisation matrix: {cells} cells as expected ({len(table)} RPCs x {len(ROLES)} roles)")


if __name__ == "__main__":
    main()
