"""The HSDS 3.0 API of a real node holding real imported data, checked by clients that are
not hubdir's: every response body against Open Referral's schemas with formats checked
(jsonschema), the answers against what the export and a computation here say, then every
operation of the official openapi.json fuzzed by schemathesis.

Usage: hsds_api.py ADDRESS SCHEMA_DIR EXPORT.json WORK_DIR

SCHEMA_DIR holds the spec and schemas (integration-tests/fixtures/hsds-3.0); EXPORT.json is
`hubdir export --format hsds` of the node's database. Prints one line per check.
"""

import gzip
import json
import math
import os
import pathlib
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

ADDRESS, SCHEMA_DIR, EXPORT, WORK = sys.argv[1:5]
BASE = f"http://{ADDRESS}/hsds"
SCHEMAS = pathlib.Path(SCHEMA_DIR)


def fail(message):
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def get(path, expect=200, raw=False):
    request = urllib.request.Request(BASE + path, headers={"Accept-Encoding": "gzip"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, error.headers, error.read()
    if headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    check(status == expect, f"GET {path}: {status}, expected {expect}: {body[:300]!r}")
    if raw:
        return headers, body.decode()
    check(headers.get("Content-Type") == "application/json", f"GET {path}: {headers.get('Content-Type')}")
    return json.loads(body)


# Formats are checked only when their checker is installed (uri and date-time need
# rfc3986-validator and rfc3339-validator): make sure they are, or the check is hollow.
FORMATS = FormatChecker()
missing = {"uuid", "uri", "email", "date-time"} - set(FORMATS.checkers)
check(not missing, f"jsonschema cannot check formats {missing}: install integration-tests/requirements.txt")

resources = []
for path in sorted(SCHEMAS.rglob("*.json")):
    if path.name == "openapi.json":
        continue
    resource = Resource.from_contents(json.loads(path.read_text()), default_specification=DRAFT202012)
    resources.append((str(path.relative_to(SCHEMAS)), resource))
REGISTRY = Registry().with_resources(resources)


def validate(schema, value, where):
    validator = Draft202012Validator(REGISTRY.contents(schema), registry=REGISTRY, format_checker=FORMATS)
    errors = [f"{where}/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(value)]
    check(not errors, f"{schema}: " + "; ".join(errors[:5]))


PAGE_FIELDS = {"total_items", "total_pages", "page_number", "size", "first_page", "last_page", "empty", "contents"}


def page(path, item_schemas):
    body = get(path)
    check(set(body) == PAGE_FIELDS, f"{path}: page fields {sorted(body)}")
    for i, item in enumerate(body["contents"]):
        for schema in item_schemas:
            validate(schema, item, f"{path} contents[{i}]")
    check(body["size"] == len(body["contents"]), f"{path}: size {body['size']}")
    return body


def every(path, item_schemas, per_page=50):
    """Pages through a listing; checks the page fields on the way."""
    items, number = [], 1
    while True:
        separator = "&" if "?" in path else "?"
        body = page(f"{path}{separator}page={number}&per_page={per_page}", item_schemas)
        total, pages = body["total_items"], body["total_pages"]
        check(pages == math.ceil(total / per_page), f"{path}: {pages} pages of {total}")
        check(body["page_number"] == number and body["first_page"] == (number == 1), f"{path}: page {number}")
        check(body["last_page"] == (number >= pages), f"{path}: last_page on {number} of {pages}")
        items += body["contents"]
        if body["last_page"]:
            check(len(items) == total, f"{path}: {len(items)} items, total_items {total}")
            return items
        number += 1


export = json.loads(pathlib.Path(EXPORT).read_text())["contents"]
exported_services = {item["service"]["id"] for item in export}
exported_sal = {item["id"] for item in export}

# About.
about = get("/")
check(about["version"] == "3.0" and about["openapi_url"].startswith("https://"), f"/: {about}")
print(f"about: HSDS {about['version']}")

# Services: every page valid, the same ids as the export; each by id, fully nested.
services = every("/services", ["compiled/service_list.json", "service.json"])
ids = [s["id"] for s in services]
check(len(set(ids)) == len(ids) == len(export), f"{len(ids)} services, {len(set(ids))} ids, {len(export)} exported")
check(set(ids) == exported_services, "the API's service ids are not the export's")
full = every("/services?full=true", ["service.json"], per_page=100)
check(all(s["service_at_locations"] and s["attributes"] for s in full), "full services without their nesting")
for service in full[:: max(1, len(full) // 10)]:
    one = get(f"/services/{service['id']}")
    validate("service.json", one, f"/services/{service['id']}")
    check(one == service, f"/services/{service['id']} differs from the full listing")
minimal = every("/services?minimal=true", ["compiled/service_list.json"], per_page=500)
check({s["id"] for s in minimal} == exported_services and all(len(s) == 4 for s in minimal), "minimal services")
lines = get("/services?format=ndjson", raw=True)
headers, text = lines
check(headers.get("Content-Type") == "application/x-ndjson", f"ndjson: {headers.get('Content-Type')}")
streamed = [json.loads(line) for line in text.splitlines()]
for i, s in enumerate(streamed):
    validate("compiled/service_list.json", s, f"ndjson line {i}")
check([s["id"] for s in streamed] == ids, "ndjson: not every service, in the listing's order")
print(f"services: {len(ids)} (the export's ids), list/full/minimal/ndjson valid, {len(full[::max(1, len(full) // 10)])} by id")

# Service-at-locations: the export's ids, valid; by id too.
sals = every("/service_at_locations", ["compiled/service_at_location_list.json", "service_at_location.json"])
check({s["id"] for s in sals} == exported_sal, "the API's service_at_location ids are not the export's")
for item in sals:
    validate("service.json", item["service"], f"service_at_location {item['id']} service")
by_id = get(f"/service_at_locations/{sals[0]['id']}")
validate("service_at_location.json", by_id, "/service_at_locations/{id}")
check(by_id["location"] == sals[0]["location"], "service_at_location by id has another location")
print(f"service_at_locations: {len(sals)} (the export's ids), valid")

# Organizations: the operators; each with its services.
organizations = every("/organizations", ["compiled/organization_list.json", "organization.json"])
check(organizations, "no organization")
for organization in organizations:
    one = get(f"/organizations/{organization['id']}")
    validate("organization.json", one, f"/organizations/{organization['id']}")
    for i, nested in enumerate(one["services"]):
        validate("compiled/service_list.json", nested, f"organization services[{i}]")
    theirs = every(f"/services?organization_id={organization['id']}", ["compiled/service_list.json"])
    expected = [s["id"] for s in services if s.get("organization_id") == organization["id"]]
    check([s["id"] for s in theirs] == expected, f"services of {organization['name']}: filter disagrees")
    check([s["id"] for s in one["services"]] == expected[:50], f"{organization['name']}: nested services")
headers, text = get("/organizations?format=ndjson", raw=True)
streamed = [json.loads(line) for line in text.splitlines()]
check([o["id"] for o in streamed] == [o["id"] for o in organizations], "organizations as ndjson differ from the pages")
print(f"organizations: {len(organizations)}, each with its services, valid; ndjson the same")

# Taxonomies and terms; services by term and by taxonomy, against the attributes.
taxonomies = every("/taxonomies", ["taxonomy.json"])
terms = every("/taxonomy_terms", ["taxonomy_term.json"])
check(len(taxonomies) == 2 and len(terms) > 10, f"{len(taxonomies)} taxonomies, {len(terms)} terms")
for taxonomy in taxonomies:
    check(get(f"/taxonomies/{taxonomy['id']}") == taxonomy, "taxonomy by id")
    own = every(f"/taxonomy_terms?taxonomy_id={taxonomy['id']}", ["taxonomy_term.json"])
    check(own and all(t["taxonomy_id"] == taxonomy["id"] for t in own), "terms by taxonomy")
attributed = {t["id"]: set() for t in terms}
for service in full:
    for attribute in service["attributes"]:
        attributed[attribute["taxonomy_term_id"]].add(service["id"])
checked_terms = 0
for term in terms:
    check(get(f"/taxonomy_terms/{term['id']}") == term, "term by id")
    found = {s["id"] for s in every(f"/services?taxonomy_term_id={term['id']}", ["compiled/service_list.json"])}
    check(found == attributed[term["id"]], f"services with term {term['code']}: {len(found)}, attributes say {len(attributed[term['id']])}")
    checked_terms += bool(found)
check(checked_terms >= 3, "fewer than three terms in use: the term filter was not really tested")
check(get("/services?taxonomy_term_id=00000000-0000-5000-8000-000000000000")["total_items"] == 0, "unknown term")
print(f"taxonomies: {len(taxonomies)}, terms: {len(terms)}, services by term agree with their attributes")

# Search, modified_after.
albion = every("/services?search=albion", ["compiled/service_list.json"])
check([s["name"] for s in albion] == ["Albion"], f"search albion: {[s['name'] for s in albion]}")
later = get("/services?modified_after=2999-01-01T00:00:00Z")
check(later["total_items"] == 0 and later["empty"], "modified_after the future")
check(get("/services?modified_after=2000-01-01T00:00:00Z")["total_items"] == len(ids), "modified_after the past")


# Postcode and proximity: the centre of the postcode's sites, and every site within the
# distance of it, nearest first, computed here from the export.
def postcode_of(location):
    addresses = location.get("addresses") or [{}]
    return "".join(c for c in addresses[0].get("postal_code", "") if c.isalnum()).upper()


def unit(lat, lng):
    lat, lng = math.radians(lat), math.radians(lng)
    return (math.cos(lat) * math.cos(lng), math.cos(lat) * math.sin(lng), math.sin(lat))


def metres(a, b):
    dot = sum(x * y for x, y in zip(unit(*a), unit(*b)))
    return 6_371_008.8 * math.acos(max(-1.0, min(1.0, dot)))


locations = [item["location"] for item in export]
postcode = "M9V 1B2"
in_postcode = [loc for loc in locations if postcode_of(loc) == "M9V1B2"]
check(in_postcode, f"no site in {postcode} in the fixture")
found = every(f"/service_at_locations?postcode={urllib.parse.quote(postcode)}", ["compiled/service_at_location_list.json"])
check(sorted(s["location"]["id"] for s in found) == sorted(loc["id"] for loc in in_postcode), "postcode filter")
x, y, z = (sum(c) for c in zip(*(unit(loc["latitude"], loc["longitude"]) for loc in in_postcode)))
centre = (math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x)))
for radius in (3000, 8000):
    near = every(f"/service_at_locations?postcode=m9v1b2&proximity={radius}", ["compiled/service_at_location_list.json"])
    distances = [metres(centre, (s["location"]["latitude"], s["location"]["longitude"])) for s in near]
    expected = sorted((metres(centre, (loc["latitude"], loc["longitude"])), loc["id"]) for loc in locations)
    expected = [i for d, i in expected if d <= radius - 1] + [i for d, i in expected if radius - 1 < d <= radius + 1]
    check(distances == sorted(distances), f"proximity {radius}: not nearest first")
    check(len(near) == len(expected) and {s["location"]["id"] for s in near} == set(expected), f"proximity {radius}: {len(near)} sites, expected {len(expected)}")
    check(len(near) > len(in_postcode), f"proximity {radius} found only the postcode's own sites")
    print(f"proximity: {len(near)} sites within {radius} m of {postcode}'s centre, nearest first, as computed here")

# Errors name the parameter; unknown ids are 404; both are JSON.
error = get("/services?page=0&per_page=100000&format=xml", expect=400)["error"]
fields = [v["field"] for d in error["details"] if "fieldViolations" in d for v in d["fieldViolations"]]
check(fields == ["page", "per_page", "format"], f"errors: {fields}")
check(get("/service_at_locations?proximity=500", expect=400)["error"]["status"] == "INVALID_ARGUMENT", "proximity alone")
for bad in ("/services?page=100000000000000000", "/organizations?page=100000000000000000&format=json",
            "/service_at_locations?postcode=-"):
    check(get(bad, expect=400)["error"]["status"] == "INVALID_ARGUMENT", bad)
for path in ("/services/not-an-id", f"/services/{sals[0]['id']}", "/organizations/" + "f" * 36, "/taxonomies/x"):
    check(get(path, expect=404)["error"]["status"] == "NOT_FOUND", path)
print("errors: 400 naming page, per_page, format; 404 for unknown ids")

# Schemathesis: every operation of the official spec, with ids of real records.
config = pathlib.Path(WORK) / "schemathesis.toml"
ids_of = {
    "/services/{id}": ids[0],
    "/service_at_locations/{id}": sals[0]["id"],
    "/organizations/{id}": organizations[0]["id"],
    "/taxonomies/{id}": taxonomies[0]["id"],
    "/taxonomy_terms/{id}": terms[0]["id"],
}
config.write_text("".join(f'[[operations]]\ninclude-path = "{p}"\nparameters = {{ id = "{i}" }}\n\n' for p, i in ids_of.items()))
st = pathlib.Path(sys.executable).with_name("st")
run = subprocess.run(
    [
        str(st), "--config-file", str(config), "run", str(SCHEMAS / "openapi.json"),
        "--url", BASE,
        "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance,response_headers_conformance",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", os.environ.get("HUBDIR_SCHEMATHESIS_EXAMPLES", "25"),
        "--workers", "2",
        "--seed", "1",
        "--no-color",
    ],
    capture_output=True, text=True, timeout=600, cwd=WORK,
)
summary = [line for line in run.stdout.splitlines() if "generated" in line or "Tested" in line]
check(run.returncode == 0, f"schemathesis found failures:\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}")
check(any("Tested: 11" in line for line in summary), f"schemathesis did not test all 11 operations: {summary}")
check("404" not in run.stdout.split("WARNINGS")[-1] or "Missing test data" not in run.stdout, f"schemathesis did not reach records:\n{run.stdout[-3000:]}")
print("schemathesis: " + "; ".join(line.strip() for line in summary))
