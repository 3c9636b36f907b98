"""Writes the fuzz targets' seed corpora (crates/fuzz/corpus/TARGET/) from the contract and
the import fixtures. Run from the repository root with the integration tests' Python (it needs
grpcio-tools): `~/.cache/hubdir/venv/bin/python crates/fuzz/make_seeds.py`.
"""

import hashlib
import os
import sys
import tempfile

sys.path.insert(0, "integration-tests/python")
from hubdir_client import load_stubs  # noqa: E402

ROOT = "crates/fuzz/corpus"
FIXTURES = "integration-tests/fixtures/import"


def write(target, data):
    os.makedirs(f"{ROOT}/{target}", exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    name = hashlib.sha1(data).hexdigest()
    with open(f"{ROOT}/{target}/{name}", "wb") as f:
        f.write(data)


def head(path, lines):
    with open(path, "rb") as f:
        return b"".join(f.readlines()[:lines])


def main():
    pb = load_stubs("proto", tempfile.mkdtemp())
    site_pb2, federation_pb2 = pb["site"], pb["federation"]

    for text in ["sites/zw/harare-1", "sites/fr-laposte/75001.A", "zw", "fr-laposte", "872830828ffffff",
                 "8f283080dcb019d", "sites//x", "sites/ZW/1"]:
        write("names", text)

    site = site_pb2.Site(
        name="sites/zw/harare-central", display_name="Harare City Library", kind=1, operator="City of Harare",
        country_code="ZW", time_zone="Africa/Harare", opening_hours="Mo-Fr 08:00-17:00; Sa 08:00-12:00",
        languages=["en", "sn"], services=[1, 2],
    )
    site.location.latitude, site.location.longitude = -17.8292, 31.0522
    write("site_input", site.SerializeToString())
    bare = site_pb2.Site(name="sites/zw/1", display_name="x", kind=2, country_code="ZW", time_zone="UTC")
    bare.location.latitude, bare.location.longitude = 1.0, 1.0
    write("site_input", bare.SerializeToString())

    event = federation_pb2.ChangeEvent(origin="zw", seq=1, site_name="sites/zw/harare-central", type=1,
                                       epoch="18f0c2a4b5c6d")
    event.site.CopyFrom(site)
    event.time.seconds = 1_790_000_000
    write("change_event", b"\x01" + event.SerializeToString())
    delete = federation_pb2.ChangeEvent(origin="zw", seq=2, site_name="sites/zw/harare-central", type=2,
                                        epoch="18f0c2a4b5c6d")
    delete.time.seconds = 1_790_000_001
    write("change_event", b"\x01" + delete.SerializeToString())
    write("change_event", b"\x00" + delete.SerializeToString())

    write("import", b"\x00" + head(f"{FIXTURES}/india-post-sample.csv", 6))
    write("import", b"\x01" + b'''{"type": "FeatureCollection", "features": [
  {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-0.1276, 51.5072]},
   "properties": {"id": "1", "Library name": "Central", "Local authority": "Westminster",
                  "Postcode": "SW1A 1AA", "Email address": "a@b.uk", "Year closed": null}},
  {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-2.24, 53.48]},
   "properties": {"id": "2", "Library name": "Closed", "Year closed": 2019}}]}''')
    with open(f"{FIXTURES}/hsds-example-service_at_location_list.json", "rb") as f:
        write("import", b"\x02" + f.read())

    for token in ["", "eyJhZnRlciI6InNpdGVzL3p3LzE3In0", "e30AAAAAAAAAAAAAAAAAAAAA"]:
        write("page_token", token)
    for token in [
        "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0.eyJpc3MiOiJpc3MiLCJhdWQiOiJhdWQiLCJzdWIiOiJtZSIsImV4cCI6OTk5OTk5OTk5OX0.AAAA",
        "eyJhbGciOiJub25lIn0.e30.",
    ]:
        write("jwt", token)


if __name__ == "__main__":
    main()
