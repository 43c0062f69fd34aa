#!/usr/bin/env python3
"""The monthly cost table of docs/performance.md, computed from a bench run.

usage:
  scripts/bench --processes 1 --warm 1 --sizes 10,100,1000,10000 \\
      --latency-ms 150 --rate-limit 180 | tail -n 1 > bench.json
  scripts/cost.py bench.json

For each size of the bench run (the default `details` mode, under Docker
Hub's 180 requests a minute), one line a month of a run every 5 minutes:
Lambda (arm64, 128 MB, the warm run's wall time as billed duration, the
invocations), S3 requests (spool, archive, compaction, badges), the custom
metrics of the EMF record (counted in src/counts.rs) and the log bytes.
Prices: us-east-1, AWS's public price lists as of 2026-12 (below); the S3
requests per run are the ones the tests count (named beside each).
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS_PER_MONTH = 30 * 24 * 12  # every 5 minutes
MEMORY_GB = 128 / 1024

LAMBDA_ARM64_GB_S = 0.0000133334
LAMBDA_REQUEST = 0.20 / 1_000_000
S3_PUT_LIST = 0.005 / 1000  # PUT, COPY, POST, LIST
S3_GET = 0.0004 / 1000  # GET and all other requests (HEAD; DELETE is free)
CUSTOM_METRIC_MONTH = 0.30  # first 10,000 metrics
LOG_INGEST_GB = 0.50

# S3 requests per run, and where they are counted.
PER_RUN = {
    # tests/archive_write.rs a_run_costs_two_listings_and_one_write:
    # the run time's prefix and archive-pending/, one conditional PUT.
    "archive": {"list_put": 2 + 1, "get": 0},
    # src/delivery.rs: the spool is listed once a run (to drain a backlog);
    # nothing is written while Elasticsearch takes every document.
    "spool": {"list_put": 1, "get": 0},
}
# Per day: compaction lists the day and reads its 288 objects, writes one
# Parquet file and deletes the marker (src/archive/compact.rs).
PER_DAY = {"compaction": {"list_put": 2 + 1, "get": 288}}
LOG_BYTES_PER_RUN = 2_500  # the summary line, the EMF record, START/END/REPORT


def metric_count() -> int:
    text = (ROOT / "src" / "counts.rs").read_text()
    return len(re.findall(r'^\s*\w+\s*:\s*[^=;]+=>\s*"(\w+)"', text, re.M))


def main(path: str) -> None:
    bench = json.loads(Path(path).read_text())
    metrics = metric_count()
    print(f"bench: {bench.get('config', {}).get('namespace_counts', '?')} mode, "
          f"rate limit {bench.get('config', {}).get('rate_limit_per_minute')} a minute; "
          f"{metrics} custom metrics")
    print()
    print("| repositories | billed s a run | Lambda | S3 requests | metrics | logs | total / month |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for result in bench["results"]:
        warm = result.get("warm") or result.get("cold")
        seconds = warm["wall_ms"] / 1000
        compute = RUNS_PER_MONTH * seconds * MEMORY_GB * LAMBDA_ARM64_GB_S
        requests = RUNS_PER_MONTH * LAMBDA_REQUEST
        list_put = sum(r["list_put"] for r in PER_RUN.values()) * RUNS_PER_MONTH + sum(
            r["list_put"] for r in PER_DAY.values()) * 30
        gets = sum(r["get"] for r in PER_RUN.values()) * RUNS_PER_MONTH + sum(r["get"] for r in PER_DAY.values()) * 30
        s3 = list_put * S3_PUT_LIST + gets * S3_GET
        custom = metrics * CUSTOM_METRIC_MONTH
        logs = RUNS_PER_MONTH * LOG_BYTES_PER_RUN / 1e9 * LOG_INGEST_GB
        total = compute + requests + s3 + custom + logs
        print(f"| {result['n']:,} | {seconds:.1f} | ${compute + requests:.2f} | ${s3:.2f} | "
              f"${custom:.2f} | ${logs:.2f} | **${total:.2f}** |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2])
    main(sys.argv[1])
