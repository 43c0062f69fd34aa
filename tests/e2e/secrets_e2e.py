#!/usr/bin/env python3
"""No secret leaves the function, even when a server echoes it back.

`cargo lambda watch` runs the real function at the most verbose log level
(RUST_LOG=trace, AWS_LAMBDA_LOG_LEVEL=TRACE) with distinctive secrets: an
Elasticsearch password and API key, a Docker Hub token, an AWS secret key
and session token. Every failure path is driven against servers that echo
credentials the way AWS does:

- Basic against an IAM-only domain (the fake Elasticsearch in its AWS-echo
  mode: 403, `Authorization=Basic <base64(user:password)>`), on a run and on
  setup;
- ApiKey against the SigV4 verifier (tests/support/sigv4_proxy.py
  --echo-like-aws): the same echo;
- a wrong signature against the verifier: "The Canonical String for this
  request should have been …" with the `x-amz-security-token` line;
- a Docker Hub token exchange refused with the token in the 401;
- an SSM and an S3 denial, from a proxy in front of moto that answers as
  AWS would, with the Authorization header and the session token in the
  message (moto's own denials echo nothing).

Then stdout, stderr, every summary and invocation error and the metrics
record are searched for each secret, its base64 (and base64(user:password))
and its URL encoding: none may appear. Run by scripts/e2e-lambda.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lambda_e2e as e2e  # noqa: E402  (the shared helpers)

import boto3  # noqa: E402

ROOT = e2e.ROOT
PREFIX = "/docker-pulls"
BUCKET = "docker-pulls-spool"
ES_USER = "writer"
ES_PASSWORD = "pw-Secr3t!e2e-Zq9 x"
API_KEY = "QUtJREU6YXBpLWtleS1zZWNyZXQtZTJlLTk5OQ=="
HUB_TOKEN = "dckr_pat_E2eHubSecretToken42"
AWS_KEY_ID = "AKIDE2ESECRETS"
AWS_SECRET = "e2eSecretAccessKey/Wx7+Qz"
AWS_TOKEN = "IQoJb3JpZ2luX2VjE2eSessionToken+/Zz9=="


def forms(secret: str) -> dict[str, str]:
    """What must never appear: the value, its base64 and its URL encoding."""
    return {
        "value": secret,
        "base64": base64.b64encode(secret.encode()).decode(),
        "url-encoded": urllib.parse.quote(secret, safe=""),
        "form-encoded": urllib.parse.quote_plus(secret),
    }


FORBIDDEN: dict[str, str] = {}
for name, secret in [("password", ES_PASSWORD), ("api key", API_KEY), ("hub token", HUB_TOKEN),
                     ("aws secret key", AWS_SECRET), ("session token", AWS_TOKEN)]:
    for form, text in forms(secret).items():
        if text != secret or form == "value":
            FORBIDDEN[f"{name} ({form})"] = text
FORBIDDEN["base64(user:password)"] = base64.b64encode(f"{ES_USER}:{ES_PASSWORD}".encode()).decode()


class DenyingProxy(http.server.ThreadingHTTPServer):
    """In front of moto: forwards, or (when told to) refuses SSM or S3 calls
    as AWS would, echoing the request's Authorization header and session
    token in the message."""

    daemon_threads = True

    def __init__(self, upstream_port: int):
        super().__init__(("127.0.0.1", 0), DenyingHandler)
        self.upstream_port = upstream_port
        self.deny: set[str] = set()


class DenyingHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DenyingProxy

    def log_message(self, format, *args):  # noqa: A002
        pass

    def handle_any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = self.headers.get("X-Amz-Target") or ""
        service = "ssm" if target.startswith("AmazonSSM.") else "s3"
        echo = (f"Authorization={self.headers.get('Authorization')} "
                f"x-amz-security-token:{self.headers.get('X-Amz-Security-Token')}")
        if service in self.server.deny:
            if service == "ssm":
                status, kind = 400, "application/x-amz-json-1.1"
                data = json.dumps({
                    "__type": "AccessDeniedException",
                    "message": "User: arn:aws:sts::123456789012:assumed-role/docker-pulls/fn is not "
                               f"authorized to perform: ssm:GetParametersByPath ({echo})",
                }).encode()
            else:
                status, kind = 403, "application/xml"
                data = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>"
                        f"<Message>Access Denied ({echo})</Message><RequestId>E2E</RequestId></Error>").encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=30)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            data = response.read()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="docker-pulls-secrets-e2e-"))
    try:
        return run(workdir)
    finally:
        for proc in reversed(e2e.processes):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def run(workdir: Path) -> int:
    python = str(e2e.VENV_BIN / "python3") if (e2e.VENV_BIN / "python3").exists() else sys.executable
    moto_port = e2e.free_port()
    e2e.start([python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    moto_url = f"http://127.0.0.1:{moto_port}"
    e2e.wait_for("moto", lambda: e2e.http("GET", f"{moto_url}/moto-api/")[0] == 200)
    ssm = boto3.client("ssm", endpoint_url=moto_url, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    s3.create_bucket(Bucket=BUCKET)
    deny = DenyingProxy(moto_port)
    threading.Thread(target=deny.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    aws_url = f"http://127.0.0.1:{deny.server_address[1]}"

    def put(name: str, value: str, kind: str = "String") -> None:
        ssm.put_parameter(Name=f"{PREFIX}/{name}", Value=value, Type=kind, Overwrite=True)

    def delete(*names: str) -> None:
        for name in names:
            try:
                ssm.delete_parameter(Name=f"{PREFIX}/{name}")
            except ssm.exceptions.ParameterNotFound:
                pass

    fakes = e2e.start([str(e2e.TARGET / "debug/examples/fake_services"), "--echo-secrets"],
                      stdout=subprocess.PIPE, text=True)
    urls = e2e.read_json_line(fakes, "fake_services")
    hub_url, echo_es_url = urls["hub"], urls["es"]
    proxy = e2e.start([python, str(ROOT / "tests/support/sigv4_proxy.py"), "--upstream", echo_es_url,
                       "--region", "us-east-1", "--service", "es", "--echo-like-aws",
                       "--key", f"{AWS_KEY_ID}:not-the-functions-secret:{AWS_TOKEN}"],
                      stdout=subprocess.PIPE, text=True)
    assert proxy.stdout is not None
    proxy_url = proxy.stdout.readline().strip().removeprefix("listening on ")

    env_file = workdir / "lambda.env"
    env_file.write_text("\n".join([
        f"SSM_PREFIX={PREFIX}",
        f"DOCKER_HUB_URL={hub_url}",
        f"AWS_ENDPOINT_URL_SSM={aws_url}",
        f"AWS_ENDPOINT_URL_S3={aws_url}",
        f"SPOOL_BUCKET={BUCKET}",
        f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}",
        f"AWS_SECRET_ACCESS_KEY='{AWS_SECRET}'",
        f"AWS_SESSION_TOKEN='{AWS_TOKEN}'",
        "AWS_REGION=us-east-1",
        "AWS_LAMBDA_LOG_FORMAT=JSON",
        "AWS_LAMBDA_LOG_LEVEL=TRACE",
        "RUST_LOG=trace",
        "AWS_LAMBDA_FUNCTION_NAME=docker-pulls",
        "",
    ]))
    port = e2e.free_port()
    log_path = workdir / "watch.log"
    with open(log_path, "w") as log:
        e2e.start(["cargo", "lambda", "watch", "-P", str(port), "--ignore-changes", "--env-file", str(env_file)],
                  cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def ready() -> bool:
        with e2e.socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    try:
        e2e.wait_for("cargo lambda watch", ready, 120)
    except SystemExit:
        print(log_path.read_text(errors="replace")[-2000:])
        raise
    outputs: list[tuple[str, str]] = []
    event = workdir / "run.json"
    event.write_text(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
    setup = ROOT / "events" / "setup.json"

    def case(name: str, event_file: Path, expect_failure: bool, expect: str) -> None:
        code, out, err = e2e.invoke(port, event_file)
        outputs.append((name, out + "\n" + err))
        failed = code != 0
        e2e.check(f"{name}: {'fails' if expect_failure else 'succeeds'} and says {expect!r}",
                  failed == expect_failure and expect in out + err, (code, out[-800:], err[-800:]))

    put("images", "httpd,library/mysql")
    print("Basic against an IAM-only domain (403 echoing Authorization=Basic …):")
    put("elasticsearch/url", echo_es_url)
    put("elasticsearch/username", ES_USER)
    put("elasticsearch/password", ES_PASSWORD, "SecureString")
    case("a run with Basic", event, False, "spooled")
    case("setup with Basic", setup, True, "403")

    print("ApiKey against the SigV4 verifier (the same echo):")
    delete("elasticsearch/username", "elasticsearch/password")
    put("elasticsearch/url", proxy_url)
    put("elasticsearch/api_key", API_KEY, "SecureString")
    case("a run with an API key", event, False, "spooled")

    print("a wrong signature (the canonical string, session token included):")
    delete("elasticsearch/api_key")
    put("elasticsearch/aws_auth", "es")
    case("a run signed with the wrong key", event, False, "signature")
    case("setup signed with the wrong key", setup, True, "signature")

    print("Docker Hub refusing the token (401 echoing it):")
    put("dockerhub/username", "acme")
    put("dockerhub/token", HUB_TOKEN, "SecureString")
    case("a run whose Hub token is refused", event, True, "DockerHubAuthError")
    delete("dockerhub/username", "dockerhub/token")

    print("S3 refusing the spool write (AWS's denial, echoing the request's credentials):")
    deny.deny = {"s3"}
    case("a run whose spool write is denied", event, True, "SpoolWrite")

    print("SSM refusing the parameters (the same):")
    deny.deny = {"ssm"}
    case("a run whose parameters are denied", event, True, "SsmError")
    deny.deny = set()

    logs = log_path.read_text(errors="replace")
    emf = [line for line in logs.splitlines() if '"_aws"' in line]
    e2e.check("the metrics records were written", len(emf) >= 5, len(emf))
    e2e.check("the log is at TRACE", '"TRACE"' in logs, "no TRACE line")
    everything = [("stdout and stderr of cargo lambda watch", logs)] + outputs
    for where, text in everything:
        found = [name for name, secret in FORBIDDEN.items() if secret in text]
        e2e.check(f"no secret in {where}", not found, found)
    print(f"secrets e2e: {e2e.passes} passed, {e2e.failures} failed")
    if e2e.failures:
        print("--- cargo lambda watch log (tail) ---")
        print("\n".join(logs.splitlines()[-40:]))
    return 1 if e2e.failures else 0


if __name__ == "__main__":
    sys.exit(main())
