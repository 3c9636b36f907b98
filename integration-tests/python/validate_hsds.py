"""Validates `hubdir export --format hsds` output against the official HSDS 3.0 schemas.

Usage: validate_hsds.py EXPORT.json SCHEMA_DIR

The export is HSDS's paginated service_at_location list. Each item of `contents` is checked
against service_at_location.json (its embedded location against location.json, and so on
through the schemas' references) and its embedded service against service.json, with format
checking on (ids must be UUIDs).
"""

import json
import pathlib
import sys

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

BASE = "https://raw.githubusercontent.com/openreferral/specification/3.0/schema/"


def registry(schema_dir):
    resources = []
    for path in sorted(pathlib.Path(schema_dir).glob("*.json")):
        resource = Resource.from_contents(json.loads(path.read_text()), default_specification=DRAFT202012)
        # The schemas refer to each other by file name, and a few by their published URL.
        resources += [(path.name, resource), (BASE + path.name, resource)]
    return Registry().with_resources(resources)


def main():
    export, schema_dir = sys.argv[1], sys.argv[2]
    data = json.loads(pathlib.Path(export).read_text())
    reg = registry(schema_dir)
    # jsonschema checks uri and date-time only with rfc3986-validator and rfc3339-validator.
    missing = {"uuid", "uri", "email", "date-time"} - set(FormatChecker().checkers)
    if missing:
        print(f"FAILED: jsonschema cannot check formats {missing}", file=sys.stderr)
        sys.exit(1)

    def validator(name):
        schema = reg.contents(name)
        return Draft202012Validator(schema, registry=reg, format_checker=FormatChecker())

    errors = []
    items = data["contents"]
    if not items or data["total_items"] != len(items):
        errors.append(f"{len(items)} items, total_items {data['total_items']}")
    service_at_location, service = validator("service_at_location.json"), validator("service.json")
    for i, item in enumerate(items):
        for check, value, where in ((service_at_location, item, f"contents[{i}]"), (service, item.get("service"), f"contents[{i}].service")):
            for error in check.iter_errors(value):
                errors.append(f"{where} {'/'.join(map(str, error.absolute_path))}: {error.message}")
    if errors:
        print("FAILED: HSDS validation\n  " + "\n  ".join(errors[:30]), file=sys.stderr)
        sys.exit(1)
    print(f"HSDS 3.0: {len(items)} service_at_locations, each with its service, valid")


if __name__ == "__main__":
    main()
