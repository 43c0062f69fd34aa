#!/usr/bin/env python3
"""The Lambda path end to end: `cargo lambda watch` runs the real
`docker-pulls` function under the Lambda Runtime API, and `cargo lambda
invoke` sends it the events of events/, against SSM on moto, the fake Docker
Hub, and two Elasticsearch stand-ins: the strict fake (tests/support/fake_es.rs)
and osmem-server (an in-memory OpenSearch-compatible server written by others,
with real _bulk and _search but no ingest pipelines), the latter also behind
tests/support/sigv4_proxy.py, which checks the function's SigV4 signatures
(`elasticsearch/aws_auth` = `es`) with botocore.

Run by scripts/e2e-lambda, which builds the binaries first. Every wait is
bounded; every process is stopped at the end.
"""

from __future__ import annotations

import calendar
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
# Where cargo put the binaries (scripts/e2e-lambda builds them there).
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
API_KEY = "ZTJlOmUyZS1zZWNyZXQta2V5LTc3Nzc="
SECRETS = [API_KEY]
PREFIX = "/docker-pulls"
BUCKET = "docker-pulls-spool"
BADGE_BUCKET = "docker-pulls-badges"

processes: list[subprocess.Popen] = []
failures = 0
passes = 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], **kwargs) -> subprocess.Popen:
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, **kwargs)
    processes.append(proc)
    return proc


def http(method: str, url: str, body: object | None = None, timeout: float = 10,
         api_key: str | None = None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"ApiKey {api_key}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, decode(response.read())
    except urllib.error.HTTPError as error:
        return error.code, decode(error.read())


def decode(body: bytes) -> object:
    """JSON when it is JSON, else the text (moto's dashboard is HTML)."""
    text = body.decode(errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def wait_for(what: str, check, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"e2e: {what} did not come up within {seconds:.0f} s")


def read_json_line(proc: subprocess.Popen, what: str, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"e2e: {what} exited before it was ready")
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict):
            return message
    raise SystemExit(f"e2e: {what} was not ready within {seconds:.0f} s")


def check(name: str, condition: bool, detail: object = "") -> None:
    global failures, passes
    if condition:
        passes += 1
        print(f"  ok    {name}")
    else:
        failures += 1
        print(f"  FAIL  {name}: {detail}")


def invoke(port: int, event_file: Path) -> tuple[int, str, str]:
    result = subprocess.run(
        ["cargo", "lambda", "invoke", "docker-pulls", "-P", str(port), "--data-file", str(event_file),
         "--output-format", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    return result.returncode, result.stdout, result.stderr


def invoke_json(port: int, event_file: Path) -> dict:
    code, out, err = invoke(port, event_file)
    if code != 0:
        raise SystemExit(f"e2e: invoke {event_file.name} failed ({code}):\n{out}\n{err}")
    return json.loads(out)


def scheduled_event(workdir: Path, seconds_ago: int) -> tuple[Path, str]:
    """events/scheduled.json as EventBridge delivers it `seconds_ago` after
    it fired (the file's own time is long past: a late replay by now)."""
    event = json.loads((ROOT / "events" / "scheduled.json").read_text())
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds_ago))
    event["time"] = stamp
    path = workdir / f"scheduled-{seconds_ago}.json"
    path.write_text(json.dumps(event))
    return path, stamp


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="docker-pulls-e2e-"))
    try:
        return run(workdir)
    finally:
        for proc in reversed(processes):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def run(workdir: Path) -> int:
    python = str(VENV_BIN / "python3") if (VENV_BIN / "python3").exists() else sys.executable

    # SSM on moto.
    moto_port = free_port()
    start([python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    moto_url = f"http://127.0.0.1:{moto_port}"
    wait_for("moto", lambda: http("GET", f"{moto_url}/moto-api/")[0] == 200)
    ssm = boto3.client("ssm", endpoint_url=moto_url, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    s3.create_bucket(Bucket=BUCKET)
    # Insights (docs/insights.md): the badge bucket and the pull alert topic,
    # read back through an SQS subscription.
    s3.create_bucket(Bucket=BADGE_BUCKET)
    aws = dict(endpoint_url=moto_url, region_name="us-east-1",
               aws_access_key_id="test", aws_secret_access_key="test")
    sns = boto3.client("sns", **aws)
    sqs = boto3.client("sqs", **aws)
    topic_arn = sns.create_topic(Name="pull-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="pull-alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

    def alert_subjects() -> list[str]:
        subjects = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return sorted(subjects)
            for message in batch:
                subjects.append(json.loads(message["Body"]).get("Subject", ""))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def spool_keys() -> list[str]:
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="spool/")
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def put(name: str, value: str, kind: str = "String") -> None:
        ssm.put_parameter(Name=f"{PREFIX}/{name}", Value=value, Type=kind, Overwrite=True)

    # The fake Docker Hub and the strict fake Elasticsearch.
    fakes = start([str(TARGET / "debug/examples/fake_services"), "--es-api-key", API_KEY],
                  stdout=subprocess.PIPE, text=True)
    urls = read_json_line(fakes, "fake_services")
    hub_url, es_url = urls["hub"], urls["es"]

    # osmem-server, the OpenSearch-compatible in-memory server.
    from osmem_server import resolve_binary

    osmem = start([resolve_binary(), "--addr", "127.0.0.1:0", "--no-ja"],
                  stdout=subprocess.PIPE, text=True)
    osmem_url = read_json_line(osmem, "osmem-server")["url"]

    put("images", "httpd,library/mysql\nradoondas/*", "StringList")
    put("elasticsearch/url", es_url)
    put("elasticsearch/api_key", API_KEY, "SecureString")

    env_file = workdir / "lambda.env"
    env_file.write_text("\n".join([
        f"SSM_PREFIX={PREFIX}",
        f"DOCKER_HUB_URL={hub_url}",
        "HUB_CONCURRENCY=8",
        f"AWS_ENDPOINT_URL_SSM={moto_url}",
        f"AWS_ENDPOINT_URL_S3={moto_url}",
        f"SPOOL_BUCKET={BUCKET}",
        f"ARCHIVE_BUCKET={BUCKET}",
        f"BADGE_BUCKET={BADGE_BUCKET}",
        f"ALERT_TOPIC_ARN={topic_arn}",
        f"AWS_ENDPOINT_URL_SNS={moto_url}",
        "AWS_ACCESS_KEY_ID=test",
        "AWS_SECRET_ACCESS_KEY=test",
        "AWS_REGION=us-east-1",
        "AWS_LAMBDA_LOG_FORMAT=JSON",
        "AWS_LAMBDA_FUNCTION_NAME=docker-pulls",
        "",
    ]))
    lambda_port = free_port()
    log_path = workdir / "watch.log"
    with open(log_path, "w") as log:
        start(["cargo", "lambda", "watch", "-P", str(lambda_port), "--ignore-changes", "--env-file", str(env_file)],
              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def watch_ready() -> bool:
        with socket.create_connection(("127.0.0.1", lambda_port), timeout=1):
            return True

    wait_for("cargo lambda watch", watch_ready, 120)
    events = ROOT / "events"
    scheduled, stamp = scheduled_event(workdir, 120)
    index = f"docker-pulls-{stamp[:4]}"

    print("strict fake Elasticsearch:")
    setup = invoke_json(lambda_port, events / "setup.json")
    check("setup installs the pipeline", setup.get("pipeline", {}).get("result") == "created", setup)
    check("setup installs the index template", setup.get("index_template", {}).get("result") == "created", setup)
    again = invoke_json(lambda_port, events / "setup.json")
    check("a second setup changes nothing", again["pipeline"]["result"] == "unchanged"
          and again["index_template"]["result"] == "unchanged", again)

    # An archived measurement five minutes before the run with a far higher
    # count for library/httpd: the run sees Docker Hub's counter go back.
    earlier = time.gmtime(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - 300)
    earlier_stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", earlier)
    line = {"@timestamp": earlier_stamp, "http": {"docker_hub": {
        "namespace": "library", "name": "httpd", "pull_count": 10**12, "star_count": 1, "collaborator_count": 0}}}
    s3.put_object(Bucket=BUCKET, Body=gzip.compress((json.dumps(line) + "\n").encode()),
                  Key=time.strftime("archive/year=%Y/month=%m/day=%d/%Y%m%dT%H%M%S.000Z-00000000000000000.ndjson.gz", earlier))

    first = invoke_json(lambda_port, scheduled)
    check("scheduled event indexes 8 repositories", first.get("indexed") == 8 and first.get("failed") == [], first)
    badge = json.loads(s3.get_object(Bucket=BADGE_BUCKET, Key="badges/library/httpd/total.json")["Body"].read())
    check("a badge object appears in the badge bucket",
          set(badge) == {"schemaVersion", "label", "message", "color"} and badge["label"] == "docker pulls", badge)
    check("the run counts the alert it raised", first.get("pull_alerts") == 1, first)
    check("the regression alert reaches the topic once",
          alert_subjects() == ["docker-pulls: regression started for library/httpd"], earlier_stamp)
    check("summary names the yearly index", first.get("index") == index, first)
    check("the event's time stamps the documents", first.get("timestamp") == stamp and "late_event" not in first, first)
    check("the summary reports the spool", first.get("spooled") == 0 and first.get("spool_backlog") == 0, first)
    retry = invoke_json(lambda_port, scheduled)
    check("a retried event indexes nothing new", retry.get("indexed") == 0 and retry.get("already_indexed") == 8, retry)
    check("a retried event alerts nothing new", retry.get("pull_alerts") == 0 and alert_subjects() == [], retry)
    status, search = http("GET", f"{es_url}/{index}/_count", api_key=API_KEY)
    check("the cluster holds exactly 8 documents", status == 200 and search.get("count") == 8, search)

    late = invoke_json(lambda_port, events / "scheduled.json")
    check("a late replay of events/scheduled.json is stamped with the fetch time",
          late.get("late_event", {}).get("event_time") == "2026-11-27T18:35:00Z"
          and late.get("timestamp") != "2026-11-27T18:35:00Z" and late.get("indexed") == 8, late)
    status, search = http("GET", f"{es_url}/{index}/_count", api_key=API_KEY)
    check("the late replay added 8 honest points", search.get("count") == 16, search)

    # Elasticsearch unreachable: the run succeeds and spools; back: drained.
    down_url = f"http://127.0.0.1:{free_port()}"
    put("elasticsearch/url", down_url)
    outage, outage_stamp = scheduled_event(workdir, 60)
    spooled = invoke_json(lambda_port, outage)
    check("with Elasticsearch unreachable the run succeeds and spools",
          spooled.get("spooled") == 8 and spooled.get("indexed") == 0 and spooled.get("spool_backlog") == 1, spooled)
    keys = spool_keys()
    check("the spool object is in S3 under spool/", len(keys) == 1 and keys[0].endswith(".ndjson"), keys)
    put("elasticsearch/url", es_url)
    back, _ = scheduled_event(workdir, 0)
    drained = invoke_json(lambda_port, back)
    check("once Elasticsearch is back the spool is drained",
          drained.get("drained") == 8 and drained.get("spool_backlog") == 0 and spool_keys() == [], drained)
    status, search = http("GET", f"{es_url}/{index}/_count", api_key=API_KEY)
    check("every point of the outage is indexed once", search.get("count") == 32, search)
    status, doc = http("GET", f"{es_url}/{index}/_doc/library%2Fhttpd@{outage_stamp}", api_key=API_KEY)
    check("a drained document keeps its original time",
          isinstance(doc, dict) and doc.get("_source", {}).get("@timestamp") == outage_stamp, doc)

    dry = invoke_json(lambda_port, events / "dry-run.json")
    names = [d["http"]["docker_hub"]["name"] for d in dry.get("documents", [])]
    check("dry run returns documents", names == ["httpd", "mysql", "netatmobeat"], dry)
    status, search = http("GET", f"{es_url}/{index}/_count", api_key=API_KEY)
    check("dry run indexes nothing", search.get("count") == 32, search)

    ssm.delete_parameter(Name=f"{PREFIX}/images")
    code, out, err = invoke(lambda_port, scheduled)
    check("a missing parameter fails the invocation, named in full",
          code != 0 and f"{PREFIX}/images" in out + err, (code, out, err))
    put("images", "httpd,library/mysql\nradoondas/*", "StringList")

    print("osmem-server (OpenSearch-compatible, no ingest pipelines):")
    # A change in SSM applies at the next run: no restart.
    put("elasticsearch/url", osmem_url)
    put("elasticsearch/pipeline", "none")
    ssm.delete_parameter(Name=f"{PREFIX}/elasticsearch/api_key")
    setup = invoke_json(lambda_port, events / "setup.json")
    check("setup with the pipeline disabled installs only the template",
          setup.get("pipeline") is None and setup["index_template"]["result"] == "created", setup)
    status, template = http("GET", f"{osmem_url}/_index_template/docker-pulls")
    check("osmem holds the index template", status == 200, template)
    first = invoke_json(lambda_port, scheduled)
    check("scheduled event indexes 8 repositories into osmem", first.get("indexed") == 8, first)
    retry = invoke_json(lambda_port, scheduled)
    check("a retried event duplicates nothing in osmem", retry.get("already_indexed") == 8, retry)
    http("POST", f"{osmem_url}/{index}/_refresh")
    status, search = http("POST", f"{osmem_url}/{index}/_search", {"size": 100, "query": {"match_all": {}}})
    hits = search.get("hits", {}).get("hits", []) if isinstance(search, dict) else []
    check("osmem _search finds 8 documents", len(hits) == 8, search)
    httpd = next((h for h in hits if h.get("_id") == f"library/httpd@{stamp}"), {})
    status, mapping = http("GET", f"{osmem_url}/{index}/_mapping")
    hub_fields = (mapping.get(index, {}).get("mappings", {}).get("properties", {}).get("http", {})
                  .get("properties", {}).get("docker_hub", {}).get("properties", {})) if isinstance(mapping, dict) else {}
    check("the index got the template's mapping",
          hub_fields.get("pull_count", {}).get("type") == "long"
          and hub_fields.get("name", {}).get("type") == "keyword", mapping)
    check("documents are exactly the contract's shape", httpd.get("_source") == {
        "@timestamp": stamp,
        "http": {"docker_hub": {"namespace": "library", "name": "httpd", "pull_count": 4871203345,
                                "star_count": 4812, "collaborator_count": 0}}}, httpd)
    # With the default pipeline named, osmem (no pipelines) must still get everything.
    ssm.delete_parameter(Name=f"{PREFIX}/elasticsearch/pipeline")
    manual = workdir / "later.json"
    manual.write_text(json.dumps({"time": "2026-11-27T18:45:00Z"}))
    later = invoke_json(lambda_port, manual)
    check("with the pipeline named and absent, nothing is lost", later.get("indexed") == 8, later)

    print("SigV4 (elasticsearch/aws_auth = es) through tests/support/sigv4_proxy.py to osmem-server:")
    # botocore checks every signature, as Amazon OpenSearch Service would,
    # with the static credentials the function has from its environment.
    proxy_log = workdir / "sigv4.jsonl"
    proxy = start([python, str(ROOT / "tests/support/sigv4_proxy.py"), "--upstream", osmem_url,
                   "--region", "us-east-1", "--service", "es", "--key", "test:test", "--log", str(proxy_log)],
                  stdout=subprocess.PIPE, text=True)
    assert proxy.stdout is not None
    first_line = proxy.stdout.readline().strip()
    if not first_line.startswith("listening on "):
        raise SystemExit(f"e2e: sigv4_proxy.py did not start: {first_line!r}")
    proxy_url = first_line.removeprefix("listening on ")
    put("elasticsearch/url", proxy_url)
    put("elasticsearch/aws_auth", "es")
    put("elasticsearch/pipeline", "none")
    put("elasticsearch/index", "signed-pulls")  # a fresh index: exactly this case's documents
    signed_setup = invoke_json(lambda_port, events / "setup.json")
    check("signed setup installs the index template",
          signed_setup.get("index_template", {}).get("result") == "created", signed_setup)
    signed_event = workdir / "signed.json"
    signed_stamp = "2026-11-27T19:00:00Z"
    signed_event.write_text(json.dumps({"time": signed_stamp}))
    signed = invoke_json(lambda_port, signed_event)
    check("a signed run indexes 8 repositories", signed.get("indexed") == 8 and signed.get("spooled") == 0, signed)
    signed_again = invoke_json(lambda_port, signed_event)
    check("the same event signed again adds nothing",
          signed_again.get("indexed") == 0 and signed_again.get("already_indexed") == 8, signed_again)
    http("POST", f"{osmem_url}/signed-pulls-2026/_refresh")
    status, search = http("POST", f"{osmem_url}/signed-pulls-2026/_search", {"size": 100, "query": {"match_all": {}}})
    hits = search.get("hits", {}).get("hits", []) if isinstance(search, dict) else []
    check("osmem holds exactly the 8 signed documents", status == 200 and len(hits) == 8
          and all(h.get("_source", {}).get("@timestamp") == signed_stamp for h in hits), search)
    httpd = next((h for h in hits if h.get("_id") == f"library/httpd@{signed_stamp}"), {})
    check("a signed document is exactly the contract's shape", httpd.get("_source") == {
        "@timestamp": signed_stamp,
        "http": {"docker_hub": {"namespace": "library", "name": "httpd", "pull_count": 4871203345,
                                "star_count": 4812, "collaborator_count": 0}}}, httpd)
    records = [json.loads(line) for line in proxy_log.read_text().splitlines() if line.strip()]
    check("the verifier saw setup and both runs, and accepted every signature",
          len(records) >= 4 and all(r.get("verdict") == "ok" and r.get("access_key") == "test" for r in records)
          and sum(r.get("path") == "/_bulk" for r in records) == 2,
          [(r.get("method"), r.get("path"), r.get("verdict"), r.get("reason")) for r in records])

    logs = log_path.read_text(errors="replace")
    check("no secret in the function's logs", not any(secret in logs for secret in SECRETS), "secret found")
    check("one summary line per run", logs.count("run finished") >= 6, logs.count("run finished"))
    records = []
    for line in logs.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "_aws" in record:
            records.append(record)
    metrics = records[0]["_aws"]["CloudWatchMetrics"][0] if records else {}
    check("one Embedded Metric Format record per run, naming the function",
          len(records) >= 6 and metrics.get("Namespace") == "DockerPulls"
          and all(r.get("FunctionName") == "docker-pulls" for r in records), records[:1])
    check("the metrics record carries the run's counts",
          any(r.get("Spooled") == 8 for r in records) and any(r.get("Drained") == 8 for r in records), records)

    # As the template deploys it: Lambda's own filter wide open
    # (ApplicationLogLevel TRACE, so AWS_LAMBDA_LOG_LEVEL=TRACE), verbosity
    # from the LogLevel parameter through RUST_LOG. At WARN the INFO summary
    # is gone, and the metrics record, which no log level filters, is not.
    print("log level WARN, as template.yaml's LogLevel sets it:")
    quiet_env = workdir / "quiet.env"
    quiet_env.write_text(env_file.read_text() + "AWS_LAMBDA_LOG_LEVEL=TRACE\nRUST_LOG=WARN\n")
    quiet_port = free_port()
    quiet_log_path = workdir / "quiet.log"
    with open(quiet_log_path, "w") as quiet_log:
        start(["cargo", "lambda", "watch", "-P", str(quiet_port), "--ignore-changes", "--env-file", str(quiet_env)],
              cwd=ROOT, stdout=quiet_log, stderr=subprocess.STDOUT)

    def quiet_ready() -> bool:
        with socket.create_connection(("127.0.0.1", quiet_port), timeout=1):
            return True

    wait_for("cargo lambda watch (quiet)", quiet_ready, 120)
    quiet = invoke_json(quiet_port, events / "dry-run.json")
    check("a dry run at WARN still answers", quiet.get("dry_run") is True and len(quiet.get("documents", [])) == 3, quiet)
    quiet_lines = []
    for line in quiet_log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            quiet_lines.append(record)
    function_levels = {r.get("level") for r in quiet_lines if "_aws" not in r and "level" in r}
    check("at WARN the metrics record is still written",
          sum("_aws" in r and r.get("FunctionName") == "docker-pulls" for r in quiet_lines) == 1,
          quiet_lines)
    check("at WARN nothing below WARN is logged",
          not any("run finished" in json.dumps(r) for r in quiet_lines)
          and function_levels <= {"WARN", "ERROR"}, sorted(str(level) for level in function_levels))

    print(f"e2e: {passes} passed, {failures} failed")
    if failures:
        print("--- cargo lambda watch log (tail) ---")
        print("\n".join(logs.splitlines()[-60:]))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
