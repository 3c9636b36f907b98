"""Scrapes a Prometheus text endpoint and parses it with the official Python client's
parser (which refuses malformed exposition text). Prints one line per sample:
`name{label="value",...} value`, labels sorted.

Usage: prometheus_scrape.py URL
"""
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
    content_type = response.headers.get("Content-Type", "")
    text = response.read().decode("utf-8")
assert content_type.startswith("text/plain"), content_type
for family in text_string_to_metric_families(text):
    for sample in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
        print(f"{sample.name}{{{labels}}} {sample.value}")
