#!/usr/bin/env python3
"""What a deployment costs a month, computed from one benchmark run.

    scripts/cost.py docs/bench/FILE.json            # print the tables
    scripts/cost.py --check docs/performance.md     # the page's tables are this script's output

FILE.json is the last stdout line of `scripts/bench` (examples/bench.rs):
per repository count N, a cold run (the day's first run, which also writes
the daily stats page), a warm run (every other run of the day), the
compaction of that day, and for each run its wall time, S3 requests by
operation and key area, distinct EMF metrics and log bytes. This script
adds template.yaml (memory, architecture, schedule, alarms) and
src/insights/ (`BADGE_REFRESH`, `badge::KINDS`) and prices it all at us-east-1 list
prices. Nothing here is estimated except where a line says "at most".

`--check PAGE` finds every block

    <!-- cost.py docs/bench/FILE.json: begin -->
    ...
    <!-- cost.py: end -->

in PAGE and fails unless the block is exactly what this script prints for
FILE.json today (tests/performance_doc.rs runs it).
"""

import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# us-east-1 list prices, 2026-12 (aws.amazon.com/lambda/pricing,
# /s3/pricing, /cloudwatch/pricing).
LAMBDA_GB_S = {"arm64": 0.0000133334, "x86_64": 0.0000166667}
LAMBDA_REQUEST = 0.20 / 1_000_000
S3_WRITE_OR_LIST = 0.005 / 1000  # PUT, COPY, POST, LIST
S3_READ = 0.0004 / 1000  # GET, HEAD and the rest
CUSTOM_METRIC_MONTH = 0.30
ALARM_MONTH = 0.10  # a standard-resolution alarm on one metric
LOGS_INGEST_GB = 0.50
DAYS_PER_MONTH = 30

# The bench's runs are days in the past (their times drive the rotation),
# so each writes the `parquet-due/` markers of a late run; a scheduled run
# within 15 minutes of its day does not (tests/archive_write.rs,
# `a_run_costs_two_listings_and_one_write`).
LATE_RUN_ONLY = {"PUT parquet-due"}


def template_facts():
    text = (ROOT / "template.yaml").read_text()
    memory = int(re.search(r"^\s+MemorySize:\s*(\d+)", text, re.M).group(1))
    arch = re.search(r"^\s+Architectures:\s*\n\s+-\s*(\S+)", text, re.M).group(1)
    schedule = re.search(
        r"ScheduleExpression:\s*\n(?:\s+\w+:.*\n)*?\s+Default:\s*rate\((\d+) minutes?\)", text
    )
    minutes = int(schedule.group(1))
    alarms = len(re.findall(r"^\s+Type:\s*AWS::CloudWatch::Alarm\s*$", text, re.M))
    return {"memory_mb": memory, "arch": arch, "runs_per_day": 24 * 60 // minutes, "alarms": alarms}


def badge_refresh_s():
    text = (ROOT / "src/insights/mod.rs").read_text()
    match = re.search(r"pub const BADGE_REFRESH: i64 = (\d+) \* gains::HOUR;", text)
    return int(match.group(1)) * 3600


def badges_per_repository():
    text = (ROOT / "src/insights/badge.rs").read_text()
    return int(re.search(r"pub const KINDS: \[&str; (\d+)\]", text).group(1))


def price(requests):
    """Dollars for S3 requests given as {"OP area": count}."""
    total = 0.0
    for cls, count in requests.items():
        op = cls.split(" ", 1)[0]
        if op in ("PUT", "POST", "LIST", "COPY"):
            total += count * S3_WRITE_OR_LIST
        elif op != "DELETE":  # DELETE is free
            total += count * S3_READ
    return total


def without(requests, classes):
    return {c: n for c, n in requests.items() if c not in classes}


def scale(requests, factor):
    return {c: n * factor for c, n in requests.items()}


def add(*maps):
    out = {}
    for m in maps:
        for c, n in m.items():
            out[c] = out.get(c, 0) + n
    return out


def size_cost(result, facts, refresh_s):
    n = result["n"]
    runs = result["runs"]
    cold = next(r for r in runs if r["cold"])
    warm = [r for r in runs if not r["cold"]]
    if not warm:
        raise SystemExit(f"N={n}: the bench needs a warm run (--warm 1 or more)")
    per_day = facts["runs_per_day"]
    init_ms = result["init"]["init_ms"]
    gb = facts["memory_mb"] / 1024

    # Lambda: the day's first run (the stats page) once, the others as the
    # warm runs; init billed on every run (at most: Lambda reuses a warm
    # environment between five-minute runs, often).
    warm_ms = sum(r["wall_ms"] for r in warm) / len(warm)
    billed_s_day = (math.ceil(cold["wall_ms"] + init_ms) + (per_day - 1) * math.ceil(warm_ms + init_ms)) / 1000
    lambda_month = DAYS_PER_MONTH * (
        billed_s_day * gb * LAMBDA_GB_S[facts["arch"]] + per_day * LAMBDA_REQUEST
    )

    # S3: each run's own requests, without the late-run markers and the
    # per-repository badges, which are counted per day below.
    skip = LATE_RUN_ONLY | {"PUT badges/repo"}
    warm_requests = scale(add(*(without(r["s3_requests"], skip) for r in warm)), 1 / len(warm))
    runs_day = add(without(cold["s3_requests"], skip), scale(warm_requests, per_day - 1))
    # Badges: a repository's (badge::KINDS of them) are rewritten at most
    # every BADGE_REFRESH, and only when their text changed; at most, every
    # one changes every time. (The bench's runs write every badge once, as a
    # new deployment's first runs do.)
    badges_per_repo = badges_per_repository()
    docs_per_run = sum(r["documents"] for r in warm) / len(warm)
    repos_a_day = min(n, docs_per_run * per_day)
    badges_day = {"PUT badges/repo": repos_a_day * badges_per_repo * (86400 / refresh_s)}
    # Compaction: the bench's day had one archive object per run; a real
    # day has one per scheduled run, each read once.
    compaction = result["compaction"]
    objects = sum(d["objects"] for d in compaction["summary"]["days"])
    compaction_day = dict(compaction["s3_requests"])
    if objects:
        compaction_day["GET archive"] = compaction_day.get("GET archive", 0) / objects * per_day
    s3_day = add(runs_day, badges_day, compaction_day)
    s3_month = DAYS_PER_MONTH * price(s3_day)
    badges_month = DAYS_PER_MONTH * price(badges_day)

    metrics = max(r["emf_metrics"] for r in runs)
    metrics_month = metrics * CUSTOM_METRIC_MONTH + facts["alarms"] * ALARM_MONTH
    log_bytes_day = cold["log_bytes"] + (per_day - 1) * sum(r["log_bytes"] for r in warm) / len(warm)
    logs_month = DAYS_PER_MONTH * log_bytes_day / 1e9 * LOGS_INGEST_GB

    return {
        "n": n,
        "cold_ms": cold["wall_ms"],
        "warm_ms": warm_ms,
        "init_ms": init_ms,
        "docs_per_run": docs_per_run,
        "deferred_per_run": sum(r["deferred"] for r in warm) / len(warm),
        "billed_s_day": billed_s_day,
        "s3_requests_day": sum(s3_day.values()),
        "badge_puts_day": badges_day["PUT badges/repo"],
        "compaction_requests_day": sum(compaction_day.values()),
        "metrics": metrics,
        "log_bytes_day": log_bytes_day,
        "lambda": lambda_month,
        "s3": s3_month - badges_month,
        "badges": badges_month,
        "cloudwatch": metrics_month,
        "logs": logs_month,
        "total": lambda_month + s3_month + metrics_month + logs_month,
    }


def bench_command(argv):
    """The bench's arguments as `scripts/bench` takes them (it adds
    `--binary` and `--lambda` itself)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--binary", "--lambda"):
            skip = True
        else:
            out.append(arg)
    return " ".join(["scripts/bench"] + out)


def money(x):
    return f"${x:,.2f}"


def tables(path):
    bench = json.loads((ROOT / path).read_text())
    source = bench.get("source") or {}
    if source.get("tracked_changes") is not False or not source.get("commit"):
        raise SystemExit(f"{path}: measured with uncommitted changes or no commit; rerun on a clean tree")
    facts = template_facts()
    refresh = badge_refresh_s()
    config = bench["config"]
    rows = [size_cost(r, facts, refresh) for r in bench["results"]]
    out = []
    limit = config.get("rate_limit_per_minute")
    out.append(
        f"Measured {bench['machine']['date'][:10]} at {source['commit'][:7]} with "
        f"`{bench_command(bench['command'])}`; computed by `scripts/cost.py {path}`: "
        f"`dockerhub/namespace_counts` {config['namespace_counts']}, "
        f"{'Docker Hub limit ' + str(limit) + ' requests a minute' if limit else 'no rate limit'}, "
        f"Hub latency {config['latency_ms']} ms, `HUB_CONCURRENCY` {config['hub_concurrency']}, "
        f"deadline {config['deadline_s']} s; {facts['runs_per_day']} runs a day at "
        f"{facts['memory_mb']} MB on {facts['arch']}, {DAYS_PER_MONTH} days a month."
    )
    out.append("")
    out.append("| repositories | Lambda | S3 requests | S3 badges (at most) | custom metrics + alarms | logs | total / month |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        out.append(
            f"| {r['n']:,} | {money(r['lambda'])} | {money(r['s3'])} | {money(r['badges'])} | "
            f"{money(r['cloudwatch'])} | {money(r['logs'])} | **{money(r['total'])}** |"
        )
    out.append("")
    out.append("What each row is computed from (per day unless stated):")
    out.append("")
    out.append("| repositories | first run ms | other runs ms | init ms | documents / deferred a run | billed s | S3 requests | of them badge PUTs (at most) | of them compaction | EMF metrics | log KiB |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        out.append(
            f"| {r['n']:,} | {r['cold_ms']:,.0f} | {r['warm_ms']:,.0f} | {r['init_ms']:.1f} | "
            f"{r['docs_per_run']:,.0f} / {r['deferred_per_run']:,.0f} | {r['billed_s_day']:,.1f} | "
            f"{r['s3_requests_day']:,.0f} | {r['badge_puts_day']:,.0f} | {r['compaction_requests_day']:,.0f} | "
            f"{r['metrics']} | {r['log_bytes_day'] / 1024:,.0f} |"
        )
    return "\n".join(out) + "\n"


BLOCK = re.compile(r"<!-- cost\.py (\S+): begin -->\n(.*?)<!-- cost\.py: end -->", re.S)


def check(page):
    text = (ROOT / page).read_text()
    blocks = BLOCK.findall(text)
    if not blocks:
        raise SystemExit(f"{page}: no <!-- cost.py FILE: begin --> block")
    bad = 0
    for path, body in blocks:
        want = tables(path)
        if body.strip() != want.strip():
            bad += 1
            print(f"{page}: the block for {path} is not what scripts/cost.py {path} prints:\n{want}", file=sys.stderr)
    if bad:
        raise SystemExit(1)
    print(f"{page}: {len(blocks)} cost block(s) match scripts/cost.py")


def main(argv):
    if len(argv) == 2 and argv[0] == "--check":
        check(argv[1])
    elif len(argv) == 1 and not argv[0].startswith("-"):
        sys.stdout.write(tables(argv[0]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
