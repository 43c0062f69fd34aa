#!/usr/bin/env python3
"""SQL over the docker-pulls archive, without a cluster.

The archive (CONTRACT "Archive") is one gzip NDJSON object per run under
`archive/year=YYYY/month=MM/day=DD/<yyyymmddThhmmss.mmmZ>-<16 hex>.ndjson.gz`,
each line exactly the indexed document. This reads a local copy of that
layout with DuckDB's `read_json(..., hive_partitioning=true)`, the way Athena
reads it from S3 with the table of docs/operations.md ("Archive and replay"),
and runs the same three example queries:

    python3 tests/support/archive_sql.py DIR      # DIR holds archive/
    python3 tests/support/archive_sql.py --self-test
    python3 tests/support/archive_sql.py --docs docs/operations.md DIR

`--docs` checks the Athena SQL of docs/operations.md ("Querying it with
Athena") as printed: every statement parses with sqlglot's Athena dialect;
the tables' columns match what the function writes; the view and the
queries, transpiled to DuckDB, run over DIR's raw objects and Parquet files
(each query against the Parquet table and against the view); pyarrow reads
the Parquet files as a second reader. It prints one JSON object (see
`check_docs`). Needs `duckdb`, `sqlglot` and `pyarrow` (pip).

prints one JSON object:

    {"rows": N, "partitions": [[year, month, day], ...],
     "repositories": ["namespace/name", ...],
     "daily": [{"repository", "day", "pulls_gained", "last_pull_count"}, ...],
     "top_this_month": [{"repository", "month", "pulls_gained"}, ...],
     "stars": [{"repository", "day", "star_count"}, ...]}

- daily: per repository and UTC day of `@timestamp`, the day's highest
  pull_count, and what it gained over the previous day with data (`lag()`);
  null for a repository's first day.
- top_this_month: the latest month in the archive, repositories by the sum of
  their daily gains in it (the first day of the month counts against the last
  day of the month before), at most 10.
- stars: per repository and day, the star_count of the day's last document.

Every count is a BIGINT, printed as a JSON integer. Needs `duckdb` (pip).
"""

from __future__ import annotations

import glob
import gzip
import importlib.util
import json
import os
import sys
import tempfile

# The table as Athena declares it (docs/operations.md): the schema is fixed,
# not inferred, so a document without collaborator_count reads as NULL and a
# count never becomes a DOUBLE.
COLUMNS = {
    "@timestamp": "VARCHAR",
    "http": "STRUCT(docker_hub STRUCT(namespace VARCHAR, name VARCHAR, pull_count BIGINT, "
            "star_count BIGINT, collaborator_count BIGINT))",
}
HIVE_TYPES = {"year": "INTEGER", "month": "INTEGER", "day": "INTEGER"}

DOCS = """
CREATE TEMP VIEW docs AS
SELECT "@timestamp" AS ts,
       http.docker_hub.namespace || '/' || http.docker_hub.name AS repository,
       CAST(http.docker_hub.pull_count AS BIGINT) AS pull_count,
       CAST(http.docker_hub.star_count AS BIGINT) AS star_count,
       CAST(http.docker_hub.collaborator_count AS BIGINT) AS collaborator_count,
       CAST(left("@timestamp", 10) AS DATE) AS day,
       year, month, day AS day_of_month
FROM read_json({path}, format = 'newline_delimited', hive_partitioning = true,
               hive_types = {hive_types}, columns = {columns})
"""

DAILY = """
CREATE TEMP VIEW daily AS
WITH per_day AS (
    SELECT repository, day, max(pull_count) AS last_pull_count
    FROM docs GROUP BY repository, day
)
SELECT repository, day, last_pull_count,
       CAST(last_pull_count - lag(last_pull_count) OVER (PARTITION BY repository ORDER BY day) AS BIGINT)
           AS pulls_gained
FROM per_day
"""

TOP_THIS_MONTH = """
SELECT repository, strftime(date_trunc('month', day), '%Y-%m') AS month,
       CAST(coalesce(sum(pulls_gained), 0) AS BIGINT) AS pulls_gained
FROM daily
WHERE date_trunc('month', day) = (SELECT date_trunc('month', max(day)) FROM daily)
GROUP BY repository, month
ORDER BY pulls_gained DESC, repository
LIMIT 10
"""

STARS = """
SELECT repository, day, CAST(arg_max(star_count, ts) AS BIGINT) AS star_count
FROM docs GROUP BY repository, day
ORDER BY repository, day
"""


def duckdb_literal(mapping: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{key}': '{value}'" for key, value in mapping.items()) + "}"


def query(directory: str) -> dict:
    import duckdb

    pattern = os.path.join(directory, "archive", "**", "*.ndjson.gz")
    empty = {"rows": 0, "partitions": [], "repositories": [], "daily": [], "top_this_month": [], "stars": []}
    if not glob.glob(pattern, recursive=True):
        return empty
    con = duckdb.connect()
    con.execute(DOCS.format(path=f"'{escape(pattern)}'", hive_types=duckdb_literal(HIVE_TYPES),
                            columns=duckdb_literal(COLUMNS)))
    con.execute(DAILY)

    def rows(sql: str) -> list[tuple]:
        return con.execute(sql).fetchall()

    result = {
        "rows": rows("SELECT CAST(count(*) AS BIGINT) FROM docs")[0][0],
        "partitions": [list(row) for row in
                       rows("SELECT DISTINCT year, month, day_of_month FROM docs ORDER BY 1, 2, 3")],
        "repositories": [row[0] for row in rows("SELECT DISTINCT repository FROM docs ORDER BY 1")],
        "daily": [
            {"repository": repo, "day": day.isoformat(), "pulls_gained": gained, "last_pull_count": last}
            for repo, day, last, gained in
            rows("SELECT repository, day, last_pull_count, pulls_gained FROM daily ORDER BY repository, day")
        ],
        "top_this_month": [
            {"repository": repo, "month": month, "pulls_gained": gained}
            for repo, month, gained in rows(TOP_THIS_MONTH)
        ],
        "stars": [
            {"repository": repo, "day": day.isoformat(), "star_count": stars}
            for repo, day, stars in rows(STARS)
        ],
    }
    con.close()
    return result


def escape(text: str) -> str:
    return text.replace("'", "''")


# -- self-test -------------------------------------------------------------------


def doc(ts: str, namespace: str, name: str, pulls: int, stars: int, collaborators: int | None = 0) -> dict:
    counts = {"namespace": namespace, "name": name, "pull_count": pulls, "star_count": stars}
    if collaborators is not None:
        counts["collaborator_count"] = collaborators
    return {"@timestamp": ts, "http": {"docker_hub": counts}}


def write_object(root: str, run: str, docs: list[dict], unique: str) -> None:
    """One archive object, named as CONTRACT "Archive" names it."""
    year, month, day = run[0:4], run[4:6], run[6:8]
    folder = os.path.join(root, "archive", f"year={year}", f"month={month}", f"day={day}")
    os.makedirs(folder, exist_ok=True)
    lines = "".join(json.dumps(d, separators=(",", ":")) + "\n" for d in docs)
    with open(os.path.join(folder, f"{run}-{unique}.ndjson.gz"), "wb") as handle:
        handle.write(gzip.compress(lines.encode()))


def self_test() -> int:
    failures = 0

    def check(name: str, condition: bool, detail: object = "") -> None:
        nonlocal failures
        print(f"ok    {name}" if condition else f"FAIL  {name}: {detail}", flush=True)
        failures += 0 if condition else 1

    if importlib.util.find_spec("duckdb") is None:
        print("FAIL  duckdb is not importable (pip install duckdb)")
        return 1

    big = 2244658322  # over 2^31: must stay a BIGINT
    with tempfile.TemporaryDirectory(prefix="archive-sql-") as root:
        # Day 1, 2026-11-30: two runs.
        write_object(root, "20261130T100000.000Z", [
            doc("2026-11-30T10:00:00Z", "library", "httpd", big, 3321),
            doc("2026-11-30T10:00:00Z", "library", "redis", 1000, 50),
            doc("2026-11-30T10:00:00Z", "bitnami", "redis", 500, 7),
        ], "0123456789abcdef")
        write_object(root, "20261130T220000.000Z", [
            doc("2026-11-30T22:00:00Z", "library", "httpd", big + 100, 3322),
            doc("2026-11-30T22:00:00Z", "library", "redis", 1010, 50),
            doc("2026-11-30T22:00:00Z", "bitnami", "redis", 505, 8),
        ], "fedcba9876543210")
        # Day 2, 2026-12-01 (a new month): one run; bitnami/redis came from a
        # namespace listing, so without collaborator_count.
        write_object(root, "20261201T100000.000Z", [
            doc("2026-12-01T10:00:00Z", "library", "httpd", big + 1100, 3320),
            doc("2026-12-01T10:00:00Z", "library", "redis", 1060, 51),
            doc("2026-12-01T10:00:00Z", "bitnami", "redis", 2505, 9, collaborators=None),
        ], "00000000000000aa")
        # Day 3, 2026-12-02: two runs, the later one written first.
        write_object(root, "20261202T220000.000Z", [
            doc("2026-12-02T22:00:00Z", "library", "httpd", big + 1600, 3325),
            doc("2026-12-02T22:00:00Z", "library", "redis", 1100, 49),
        ], "00000000000000bb")
        write_object(root, "20261202T100000.000Z", [
            doc("2026-12-02T10:00:00Z", "library", "httpd", big + 1500, 3330),
            doc("2026-12-02T10:00:00Z", "library", "redis", 1090, 52),
            doc("2026-12-02T10:00:00Z", "bitnami", "redis", 2600, 9),
        ], "00000000000000cc")
        # Not part of the archive layout: never read.
        with open(os.path.join(root, "archive", "README.txt"), "w") as handle:
            handle.write("not an archive object\n")

        result = query(root)
        printed = json.dumps(result)

    check("rows: every line of every object", result["rows"] == 14, result["rows"])
    check("partitions: sorted distinct [year, month, day] as integers",
          result["partitions"] == [[2026, 11, 30], [2026, 12, 1], [2026, 12, 2]], result["partitions"])
    check("repositories: same name in two namespaces kept apart",
          result["repositories"] == ["bitnami/redis", "library/httpd", "library/redis"], result["repositories"])
    expected_daily = [
        {"repository": "bitnami/redis", "day": "2026-11-30", "pulls_gained": None, "last_pull_count": 505},
        {"repository": "bitnami/redis", "day": "2026-12-01", "pulls_gained": 2000, "last_pull_count": 2505},
        {"repository": "bitnami/redis", "day": "2026-12-02", "pulls_gained": 95, "last_pull_count": 2600},
        {"repository": "library/httpd", "day": "2026-11-30", "pulls_gained": None, "last_pull_count": big + 100},
        {"repository": "library/httpd", "day": "2026-12-01", "pulls_gained": 1000, "last_pull_count": big + 1100},
        {"repository": "library/httpd", "day": "2026-12-02", "pulls_gained": 500, "last_pull_count": big + 1600},
        {"repository": "library/redis", "day": "2026-11-30", "pulls_gained": None, "last_pull_count": 1010},
        {"repository": "library/redis", "day": "2026-12-01", "pulls_gained": 50, "last_pull_count": 1060},
        {"repository": "library/redis", "day": "2026-12-02", "pulls_gained": 40, "last_pull_count": 1100},
    ]
    check("daily: max pull_count per day, gain over the previous day (lag), null on the first day",
          result["daily"] == expected_daily, json.dumps(result["daily"], indent=1))
    check("top_this_month: 2026-12, gains summed, the 1st against November's last day",
          result["top_this_month"] == [
              {"repository": "bitnami/redis", "month": "2026-12", "pulls_gained": 2095},
              {"repository": "library/httpd", "month": "2026-12", "pulls_gained": 1500},
              {"repository": "library/redis", "month": "2026-12", "pulls_gained": 90},
          ], result["top_this_month"])
    check("stars: the star_count of each day's last document (not the day's maximum)",
          result["stars"] == [
              {"repository": "bitnami/redis", "day": "2026-11-30", "star_count": 8},
              {"repository": "bitnami/redis", "day": "2026-12-01", "star_count": 9},
              {"repository": "bitnami/redis", "day": "2026-12-02", "star_count": 9},
              {"repository": "library/httpd", "day": "2026-11-30", "star_count": 3322},
              {"repository": "library/httpd", "day": "2026-12-01", "star_count": 3320},
              {"repository": "library/httpd", "day": "2026-12-02", "star_count": 3325},
              {"repository": "library/redis", "day": "2026-11-30", "star_count": 50},
              {"repository": "library/redis", "day": "2026-12-01", "star_count": 51},
              {"repository": "library/redis", "day": "2026-12-02", "star_count": 49},
          ], result["stars"])
    numbers = [result["rows"], *(v for p in result["partitions"] for v in p)]
    for section, fields in (("daily", ("pulls_gained", "last_pull_count")),
                            ("top_this_month", ("pulls_gained",)), ("stars", ("star_count",))):
        numbers += [row[f] for row in result[section] for f in fields if row[f] is not None]
    check("every count is a Python int (BIGINT), none a float or Decimal",
          all(type(n) is int for n in numbers), sorted({type(n).__name__ for n in numbers}))
    check("the printed JSON has no float (no '.0', no exponent)",
          str(big + 1600) in printed and ".0," not in printed and "e+" not in printed, printed[:200])
    with tempfile.TemporaryDirectory(prefix="archive-sql-empty-") as empty:
        check("an empty or missing archive gives zero rows, not an error",
              query(empty)["rows"] == 0)

    outcome = f"FAILED, {failures} case(s)" if failures else "all passed"
    print(f"archive_sql self-test: {outcome}")
    return 1 if failures else 0


def docs_sql(path: str) -> list[str]:
    """The ```sql blocks of the "Querying it with Athena" section, as printed."""
    text = open(path, encoding="utf-8").read()
    start = text.index("### Querying it with Athena")
    end = text.find("\n### ", start + 1)
    section = text[start:end if end >= 0 else len(text)]
    blocks, inside, current = [], False, []
    for line in section.splitlines():
        if not inside and line.strip() == "```sql":
            inside, current = True, []
        elif inside and line.strip() == "```":
            inside = False
            blocks.append("\n".join(current))
        elif inside:
            current.append(line)
    return blocks


def plain(value: object) -> object:
    """A DuckDB or pyarrow value as JSON: dates and times as ISO text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def check_docs(docs: str, directory: str) -> dict:
    """{"statements": N, "tables": {name: {"columns", "partitions", "location"}},
        "views": [name], "queries": [{"parquet": rows, "recent": rows}],
        "pyarrow": {"files", "schema", "rows", "covered_keys", "records"}}"""
    import duckdb
    import pyarrow.parquet as pq
    import sqlglot
    from sqlglot import exp

    statements = []
    for block in docs_sql(docs):
        for statement in sqlglot.parse(block, read="athena"):
            if statement is not None:
                statements.append(statement)
    tables, views, queries = {}, [], []
    for statement in statements:
        if isinstance(statement, exp.Create) and statement.kind == "TABLE":
            schema = statement.this
            name = schema.this.name
            columns = [c.name for c in schema.expressions]
            props = statement.args.get("properties")
            partitions, location = [], None
            for prop in (props.expressions if props else []):
                if isinstance(prop, exp.PartitionedByProperty):
                    partitions = [c.name for c in prop.this.expressions]
                elif isinstance(prop, exp.LocationProperty):
                    location = prop.this.name
            tables[name] = {"columns": columns, "partitions": partitions, "location": location}
        elif isinstance(statement, exp.Create) and statement.kind == "VIEW":
            views.append(statement)
        else:
            queries.append(statement)

    con = duckdb.connect()
    parquet_glob = os.path.join(directory, "parquet", "**", "*.parquet")
    raw_glob = os.path.join(directory, "archive", "**", "*.ndjson.gz")
    # The tables as Athena reads them: the Parquet files with their `date`
    # partition; the raw objects a line a row, with the object's key as
    # "$path" (Athena's pseudo-column; local paths sort as keys do).
    con.execute(f"""
        CREATE VIEW docker_pulls AS
        SELECT * FROM read_parquet('{escape(parquet_glob)}', hive_partitioning = true,
                                   hive_types = {{'date': 'VARCHAR'}})""")
    con.execute(f"""
        CREATE VIEW docker_pulls_raw AS
        SELECT line, filename AS "$path", year, month, day
        FROM read_csv('{escape(raw_glob)}', columns = {{'line': 'VARCHAR'}}, delim = chr(1),
                      quote = '', escape = '', header = false, filename = true,
                      hive_partitioning = true, hive_types = {duckdb_literal(HIVE_TYPES)})""")
    for view in views:
        con.execute(view.sql(dialect="duckdb"))
    view_names = [v.this.name for v in views]

    def run(statement) -> list[list]:
        return [[plain(v) for v in row] for row in con.execute(statement.sql(dialect="duckdb")).fetchall()]

    results = []
    for query in queries:
        on_view = query.copy()
        for table in on_view.find_all(exp.Table):
            if table.name == "docker_pulls" and view_names:
                table.set("this", exp.to_identifier(view_names[0]))
        results.append({"parquet": run(query), "recent": run(on_view)})
    actual_columns = {
        "docker_pulls": [row[0] for row in con.execute("DESCRIBE docker_pulls").fetchall()],
        "docker_pulls_raw": [row[0] for row in con.execute("DESCRIBE docker_pulls_raw").fetchall()],
    }
    con.close()

    files = sorted(glob.glob(parquet_glob, recursive=True))
    records, schema, covered = [], None, []
    for path in files:
        table = pq.read_table(path, partitioning=None)
        schema = [f"{field.name}: {field.type}{'' if field.nullable else ' not null'}" for field in table.schema]
        meta = pq.read_metadata(path).metadata or {}
        covered.append(meta.get(b"docker_pulls.covered_keys", b"").decode().splitlines())
        for row in table.to_pylist():
            records.append({key: plain(value) for key, value in row.items()})
    return {
        "statements": len(statements),
        "tables": tables,
        "actual_columns": actual_columns,
        "views": view_names,
        "queries": results,
        "pyarrow": {"files": [os.path.relpath(f, directory) for f in files], "schema": schema,
                    "rows": len(records), "covered_keys": covered, "records": records},
    }


def main(argv: list[str]) -> int:
    if argv == ["--self-test"]:
        return self_test()
    if len(argv) == 3 and argv[0] == "--docs":
        print(json.dumps(check_docs(argv[1], argv[2])))
        return 0
    if len(argv) != 1 or argv[0].startswith("-"):
        sys.stderr.write("usage: archive_sql.py DIR | --self-test   (DIR holds archive/year=YYYY/...)\n")
        return 2
    if importlib.util.find_spec("duckdb") is None:
        sys.stderr.write("archive_sql: duckdb is required (pip install duckdb)\n")
        return 2
    print(json.dumps(query(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
