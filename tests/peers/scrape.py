#!/usr/bin/env python3
"""Scrapes a Prometheus endpoint as a Prometheus server would, and parses the answer with
the official Python client's exposition-format parser (prometheus_client.parser).

Usage: scrape.py URL

Prints one JSON object line on stdout:
  {"status": 200, "content_type": "...",
   "families": {"<family>": {"type": "counter", "help": "..."}},
   "samples": [{"name": "...", "labels": {...}, "value": 1.0}]}
A body the parser rejects exits 1 with the parser's error on stderr.
"""

import json
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    request = urllib.request.Request(sys.argv[1], headers={"Accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, content_type, body = response.status, response.headers.get("Content-Type"), response.read()
    except urllib.error.HTTPError as e:
        print(json.dumps({"status": e.code, "content_type": e.headers.get("Content-Type")}))
        return
    families, samples = {}, []
    for family in text_string_to_metric_families(body.decode("utf-8")):
        families[family.name] = {"type": family.type, "help": family.documentation}
        for s in family.samples:
            samples.append({"name": s.name, "labels": s.labels, "value": s.value})
    print(json.dumps({"status": status, "content_type": content_type, "families": families, "samples": samples}))


if __name__ == "__main__":
    main()
