"""Validates `hubdir export --format hsds` output against the official HSDS 3.0 schemas.

Usage: validate_hsds.py EXPORT.json SCHEMA_DIR

Each service_at_location is checked against service_at_location.json (its embedded location
against location.json, and so on through the schemas' references), each service against
service.json, with format checking on (ids must be UUIDs).
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

    def validator(name):
        schema = reg.contents(name)
        return Draft202012Validator(schema, registry=reg, format_checker=FormatChecker())

    errors = []
    for kind, schema in (("service_at_locations", "service_at_location.json"), ("services", "service.json")):
        check = validator(schema)
        items = data[kind]
        if not items:
            errors.append(f"no {kind} exported")
        for i, item in enumerate(items):
            for error in check.iter_errors(item):
                errors.append(f"{kind}[{i}] {'/'.join(map(str, error.absolute_path))}: {error.message}")
    if errors:
        print("FAILED: HSDS validation\n  " + "\n  ".join(errors[:30]), file=sys.stderr)
        sys.exit(1)
    print(f"HSDS 3.0: {len(data['service_at_locations'])} service_at_locations and {len(data['services'])} services valid")


if __name__ == "__main__":
    main()
