#!/usr/bin/env python3
"""An independent SigV4 verifier in front of a fake Elasticsearch/OpenSearch.

docker-pulls signs its Elasticsearch requests with the Rust `aws-sigv4`
crate when `elasticsearch/aws_auth` is `es` or `aoss`. A test that checks
those signatures with the same crate proves nothing, so this proxy checks
them with botocore's `SigV4Auth` (the signer of the AWS CLI and boto3), and
answers refusals the way Amazon OpenSearch Service does: HTTP 403 and a JSON
`message`. Verified requests go on, unchanged, to `--upstream`.

    python3 tests/support/sigv4_proxy.py --upstream http://127.0.0.1:PORT \
        --region us-east-1 --service es --key AKID:SECRET[:SESSION_TOKEN] \
        [--key ...] [--port 0] [--max-skew-seconds 300] [--log FILE.jsonl]

The first line on stdout is `listening on http://127.0.0.1:NNNN`; the proxy
then serves until SIGTERM or SIGINT. With `--log`, every request becomes one
JSON line: method, path, query (both raw, as received), verdict (`ok` or
`refused`), reason, access_key, signed_headers (a list), payload_hash_header
(the `x-amz-content-sha256` value or null), plus status, content_encoding,
body_bytes and session_token (whether one was sent).

With `--echo-like-aws` refusals carry what AWS's do, credentials included:
the whole `Authorization` header after `Authorization=` (a Basic or ApiKey
request), and for a signature mismatch "The Canonical String for this
request should have been …" (with the `x-amz-security-token` line) and
"The String-to-Sign should have been …".

With `--service aoss` a request must also carry `x-amz-content-sha256`
(OpenSearch Serverless requires it).

`--self-test` runs an upstream, the proxy and a botocore-signing client in
this process, checks each refusal and the forwarding, and checks the
verifier against vectors of the AWS SigV4 test suite. Exit status 0 only if
every case passes.

Canonicalisation, as AWS does it for every service but S3 (and as aws-sigv4
does with its default settings):
- path: dot segments and empty segments removed, then the path *as sent*
  percent-encoded again (`%` becomes `%25`: `/a%2Fb` is canonical
  `/a%252Fb`); unreserved characters are `A-Za-z0-9-_.~`.
- query: each `name=value` pair form-decoded (`%XX`, and `+` as a space) and
  re-encoded with only the unreserved characters left bare, then sorted. So
  `?filter_path=errors,items.*._id` is canonical
  `filter_path=errors%2Citems.%2A._id`, whether the wire had `,` or `%2C`.
  botocore's own signer does NOT do this for a query taken from the URL (it
  uses the raw pairs), so the proxy canonicalises the query itself and hands
  botocore only the encoded pairs; the path is left to botocore.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import signal
import sys
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass, field

try:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest, HTTPHeaders
    from botocore.credentials import Credentials
except ImportError:  # pragma: no cover - reported, not tested
    sys.stderr.write("sigv4_proxy: botocore is required (pip install botocore)\n")
    sys.exit(2)

SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "proxy-connection", "te", "trailer", "trailers", "transfer-encoding", "upgrade",
}

# AWS's own wording, as quoted from real answers in public issue threads
# (an Amazon OpenSearch Service domain unless noted): mismatch in
# mailerlite/laravel-elasticsearch#62 and soto-project/soto#466; bad token in
# SumoLogic/elasticsearch-client#55; region in joona/aws-es-curl#15; service in
# cllunsford/aws-signing-proxy#25 (API Gateway); scope date in
# tedder/requests-aws4auth#7; expired in mhart/aws4fetch#73; not yet current in
# NickWaterton/Roomba980-Python#118 (API Gateway); malformed header in
# nordcloud/cognitocurl#28; unsigned in recursecenter/blaggregator#167. The IAM
# guide "Troubleshoot Signature Version 4 signing" lists the same texts. Not
# checked against AWS: the x-amz-content-sha256 text (S3's), the malformed
# Credential text (S3's), the X-Amz-Date format text, and the aoss answers.
MSG_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
MSG_BAD_TOKEN = "The security token included in the request is invalid."
MSG_MISSING_TOKEN = "Missing Authentication Token"
MSG_HOST_UNSIGNED = "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
MSG_CONTENT_SHA = "The provided 'x-amz-content-sha256' header does not match what was computed."


@dataclass
class Config:
    region: str
    service: str
    keys: dict[str, tuple[str, str | None]]  # access key -> (secret, session token)
    max_skew: int = 300
    # --echo-like-aws: refusals carry what AWS puts in them, credentials included.
    echo: bool = False


@dataclass
class Verdict:
    ok: bool
    reason: str = ""
    message: str = ""
    message_key: str = "message"
    error_type: str = "InvalidSignatureException"
    access_key: str | None = None
    signed_headers: list[str] = field(default_factory=list)
    payload_hash_header: str | None = None
    session_token: bool = False

    def body(self) -> bytes:
        return json.dumps({self.message_key: self.message}, separators=(",", ":")).encode()


def parse_key(text: str) -> tuple[str, str, str | None]:
    parts = text.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise argparse.ArgumentTypeError(f"--key wants AKID:SECRET[:SESSION_TOKEN], got {text!r}")
    return parts[0], parts[1], (parts[2] if len(parts) == 3 and parts[2] else None)


def header_text(value: str) -> str:
    """http.server decodes header bytes as latin-1; signers hash UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def canonical_query(raw: str) -> str:
    """The SigV4 canonical query string of a raw query, as AWS computes it."""
    pairs = []
    for part in raw.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name = urllib.parse.unquote_plus(name)
        value = urllib.parse.unquote_plus(value)
        pairs.append((urllib.parse.quote(name, safe="-_.~"), urllib.parse.quote(value, safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def split_target(target: str) -> tuple[str, str]:
    """The raw path and raw query of a request-target (origin or absolute form)."""
    if not target.startswith("/"):
        parts = urllib.parse.urlsplit(target)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
    path, _, query = target.partition("?")
    return path, query


def parse_authorization(value: str) -> tuple[dict[str, str], list[str]]:
    """The Credential, SignedHeaders and Signature of an AWS4 header, and what is missing."""
    fields: dict[str, str] = {}
    rest = value[len(ALGORITHM):] if value.startswith(ALGORITHM + " ") else ""
    for item in rest.split(","):
        name, sep, val = item.strip().partition("=")
        if sep:
            fields[name.strip()] = val.strip()
    missing = [name for name in ("Credential", "Signature", "SignedHeaders") if not fields.get(name)]
    return fields, missing


def fmt_minutes(seconds: int) -> str:
    return f"{seconds / 60:g} min."


class _ExactHeadersSigV4(SigV4Auth):
    """botocore's SigV4 with the header set the client named, no more, no less.

    Stock botocore leaves out of the signature some headers it never signs
    itself (user-agent, expect, connection, x-amzn-trace-id, …) and adds
    `host` from the URL when absent; a verifier must sign what the client
    listed in SignedHeaders instead. Everything else is botocore's.
    """

    def headers_to_sign(self, request):
        header_map = HTTPHeaders()
        for name, value in request.headers.items():
            header_map[name.lower()] = value
        return header_map


def compute_signature(method: str, host: str, raw_path: str, raw_query: str,
                      signed: list[tuple[str, str]], body: bytes, access_key: str,
                      secret: str, token: str | None, region: str, service: str,
                      amz_date: str) -> str:
    """The signature botocore computes for this request, with the client's SignedHeaders."""
    return signing_texts(method, host, raw_path, raw_query, signed, body, access_key, secret,
                         token, region, service, amz_date)[0]


def signing_texts(method: str, host: str, raw_path: str, raw_query: str,
                  signed: list[tuple[str, str]], body: bytes, access_key: str,
                  secret: str, token: str | None, region: str, service: str,
                  amz_date: str) -> tuple[str, str, str]:
    """The signature, the canonical request and the string to sign."""
    url = f"http://{host}{raw_path or '/'}"
    query = canonical_query(raw_query)
    if query:
        url += "?" + query
    request = AWSRequest(method=method, url=url, data=body)
    for name, value in signed:
        request.headers[name] = value
    request.context["timestamp"] = amz_date
    signer = _ExactHeadersSigV4(Credentials(access_key, secret, token), service, region)
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    return signer.signature(string_to_sign, request), canonical, string_to_sign


def verify(config: Config, method: str, target: str, headers: list[tuple[str, str]],
           body: bytes, now: dt.datetime | None = None) -> Verdict:
    """Check one request the way AWS would; the first fault found is the verdict."""
    now = now or dt.datetime.now(dt.timezone.utc)
    lower: dict[str, list[str]] = {}
    for name, value in headers:
        lower.setdefault(name.lower(), []).append(header_text(value))

    def first(name: str) -> str | None:
        values = lower.get(name)
        return values[0] if values else None

    payload_header = first("x-amz-content-sha256")
    token_header = first("x-amz-security-token")
    verdict = Verdict(ok=False, payload_hash_header=payload_header,
                      session_token=token_header is not None)

    def refuse(reason: str, message: str, error_type: str = "InvalidSignatureException") -> Verdict:
        verdict.reason, verdict.message, verdict.error_type = reason, message, error_type
        return verdict

    authorization = first("authorization")
    amz_date = first("x-amz-date")
    if authorization is None:
        if config.service == "es":
            verdict.message_key = "Message"
            action = "ESHttp" + method.capitalize()
            return refuse("unsigned", f"User: anonymous is not authorized to perform: es:{action}",
                          "AccessDeniedException")
        return refuse("unsigned", MSG_MISSING_TOKEN, "MissingAuthenticationTokenException")

    fields, missing = parse_authorization(authorization)
    if missing or amz_date is None:
        parts = [f"Authorization header requires '{name}' parameter." for name in missing]
        if amz_date is None:
            parts.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
        # AWS echoes the whole header after this. Only its scheme is echoed
        # unless --echo-like-aws asks for AWS's exact answer (the credential
        # included), to prove that docker-pulls cleans it away.
        parts.append("Authorization=" + (authorization if config.echo else authorization.split(" ", 1)[0]))
        return refuse("malformed authorization: " + ", ".join(missing or ["X-Amz-Date"]),
                      " ".join(parts), "IncompleteSignatureException")

    credential = fields["Credential"].split("/")
    if len(credential) != 5 or not credential[0]:
        return refuse("malformed credential",
                      "The authorization header is malformed; the Credential is mal-formed; expecting "
                      '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
                      "IncompleteSignatureException")
    access_key, scope_date, region, service, terminator = credential
    verdict.access_key = access_key
    signed_names = [name.strip() for name in fields["SignedHeaders"].split(";") if name.strip()]
    verdict.signed_headers = signed_names

    if not re.fullmatch(r"\d{8}T\d{6}Z", amz_date):
        return refuse("bad X-Amz-Date",
                      f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'. "
                      "See http://en.wikipedia.org/wiki/ISO_8601")
    try:
        signed_at = dt.datetime.strptime(amz_date, SIGV4_TIMESTAMP).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return refuse("bad X-Amz-Date",
                      f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'. "
                      "See http://en.wikipedia.org/wiki/ISO_8601")

    scope_errors, reasons = [], []
    if region != config.region:
        scope_errors.append(f"Credential should be scoped to a valid region, not '{region}'. ")
        reasons.append(f"region {region!r} != {config.region!r}")
    if service != config.service:
        scope_errors.append(f"Credential should be scoped to correct service: '{config.service}'. ")
        reasons.append(f"service {service!r} != {config.service!r}")
    if terminator != "aws4_request":
        scope_errors.append(
            f"Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'. ")
        reasons.append(f"terminator {terminator!r}")
    if scope_date != amz_date[:8]:
        scope_errors.append(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{scope_date}' != '{amz_date[:8]}', from '{amz_date}'.")
        reasons.append(f"scope date {scope_date} != X-Amz-Date {amz_date}")
    if scope_errors:
        return refuse("scope: " + "; ".join(reasons), "".join(scope_errors))

    skew = dt.timedelta(seconds=config.max_skew)
    stamp = now.strftime(SIGV4_TIMESTAMP)
    if signed_at < now - skew:
        return refuse("expired",
                      f"Signature expired: {amz_date} is now earlier than "
                      f"{(now - skew).strftime(SIGV4_TIMESTAMP)} ({stamp} - {fmt_minutes(config.max_skew)})")
    if signed_at > now + skew:
        return refuse("not yet current",
                      f"Signature not yet current: {amz_date} is still later than "
                      f"{(now + skew).strftime(SIGV4_TIMESTAMP)} ({stamp} + {fmt_minutes(config.max_skew)})")

    if access_key not in config.keys:
        return refuse("unknown access key", MSG_BAD_TOKEN, "UnrecognizedClientException")
    secret, token = config.keys[access_key]
    if token is not None and token_header is None:
        return refuse("session token missing", MSG_BAD_TOKEN, "UnrecognizedClientException")
    if token_header is not None and token_header != token:
        return refuse("session token wrong" if token else "session token not expected",
                      MSG_BAD_TOKEN, "UnrecognizedClientException")

    if "host" not in signed_names:
        return refuse("host not signed", MSG_HOST_UNSIGNED)
    for name in lower:
        if name.startswith("x-amz-") and name not in signed_names:
            return refuse(f"{name} not signed", MSG_MISMATCH, "SignatureDoesNotMatch")
    absent = [name for name in signed_names if name not in lower]
    if absent:
        return refuse(f"signed header absent: {', '.join(absent)}", MSG_MISMATCH, "SignatureDoesNotMatch")

    if config.service == "aoss" and payload_header is None:
        # OpenSearch Serverless requires the header (opensearch-java #339 adds it
        # for that reason); what it answers without it is not documented.
        return refuse("x-amz-content-sha256 missing (aoss requires it)", MSG_MISMATCH, "SignatureDoesNotMatch")
    body_hash = hashlib.sha256(body).hexdigest()
    if payload_header is not None and payload_header != body_hash:
        return refuse(f"x-amz-content-sha256 {payload_header} != sha256(body) {body_hash}",
                      MSG_CONTENT_SHA, "XAmzContentSHA256Mismatch")

    path, query = split_target(target)
    signed = [(name, value) for name in signed_names for value in lower[name]]
    expected, canonical, string_to_sign = signing_texts(
        method, first("host") or "", path, query, signed, body, access_key, secret, token,
        region, service, amz_date)
    if not hmac.compare_digest(expected, fields["Signature"]):
        message = MSG_MISMATCH
        if config.echo:
            # As AWS answers a mismatch: the canonical request (security token
            # included) and the string to sign.
            message += (f"\n\nThe Canonical String for this request should have been\n'{canonical}'"
                        f"\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n")
        return refuse("signature mismatch", message, "SignatureDoesNotMatch")
    verdict.ok = True
    return verdict


# -- the proxy -----------------------------------------------------------------


class ProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, config: Config, upstream: str, log_path: str | None):
        super().__init__(address, ProxyHandler)
        self.config = config
        self.upstream = urllib.parse.urlsplit(upstream)
        if self.upstream.scheme not in ("http", "https") or not self.upstream.hostname:
            raise ValueError(f"--upstream must be an http(s) URL, got {upstream!r}")
        self.log_lock = threading.Lock()
        self.log_file = open(log_path, "a", encoding="utf-8") if log_path else None

    def log_request_line(self, record: dict) -> None:
        if self.log_file is None:
            return
        with self.log_lock:
            self.log_file.write(json.dumps(record, sort_keys=True) + "\n")
            self.log_file.flush()

    def server_close(self) -> None:
        super().server_close()
        if self.log_file is not None:
            self.log_file.close()


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ProxyServer

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    return None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            return self.rfile.read(int(length))
        except ValueError:
            return None

    def handle_any(self) -> None:
        body = self.read_body()
        path, query = split_target(self.path)
        record = {"method": self.command, "path": path, "query": query,
                  "content_encoding": self.headers.get("Content-Encoding")}
        if body is None:
            self.close_connection = True
            self.reply(400, {"Content-Type": "application/json"}, b'{"message":"Bad request body"}')
            record.update(verdict="refused", reason="unreadable body", status=400, access_key=None,
                          signed_headers=[], payload_hash_header=None, body_bytes=0, session_token=False)
            self.server.log_request_line(record)
            return
        verdict = verify(self.server.config, self.command, self.path, list(self.headers.items()), body)
        record.update(verdict="ok" if verdict.ok else "refused", reason=verdict.reason,
                      access_key=verdict.access_key, signed_headers=verdict.signed_headers,
                      payload_hash_header=verdict.payload_hash_header, body_bytes=len(body),
                      session_token=verdict.session_token)
        if not verdict.ok:
            record["status"] = 403
            self.server.log_request_line(record)
            self.reply(403, {"Content-Type": "application/json",
                             "x-amzn-ErrorType": verdict.error_type}, verdict.body())
            return
        status, headers, data = self.forward(body)
        record["status"] = status
        if status == 502 and headers.get("X-Proxy-Error"):
            record["reason"] = "upstream: " + headers["X-Proxy-Error"]
        self.server.log_request_line(record)
        self.reply(status, headers, data)

    def forward(self, body: bytes) -> tuple[int, dict, bytes]:
        upstream = self.server.upstream
        port = upstream.port or (443 if upstream.scheme == "https" else 80)
        cls = http.client.HTTPSConnection if upstream.scheme == "https" else http.client.HTTPConnection
        target = upstream.path.rstrip("/") + self.path if self.path.startswith("/") else self.path
        conn = cls(upstream.hostname, port, timeout=120)
        try:
            conn.putrequest(self.command, target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", upstream.netloc)
            for name, value in self.headers.items():
                lname = name.lower()
                if lname in HOP_BY_HOP or lname in ("host", "content-length"):
                    continue
                conn.putheader(name, value)
            if body or self.command in ("POST", "PUT", "PATCH") or "Content-Length" in self.headers:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            data = response.read()
            headers: dict = {}
            for name, value in response.getheaders():
                lname = name.lower()
                if lname in HOP_BY_HOP or (lname == "content-length" and self.command != "HEAD"):
                    continue
                headers.setdefault(name, [])
                headers[name].append(value)
            return response.status, headers, data
        except (OSError, http.client.HTTPException) as error:
            message = json.dumps({"message": f"sigv4_proxy: upstream unreachable: {error}"},
                                 separators=(",", ":")).encode()
            return 502, {"Content-Type": "application/json", "X-Proxy-Error": str(error)}, message
        finally:
            conn.close()

    def reply(self, status: int, headers: dict, data: bytes) -> None:
        self.send_response(status)
        has_length = False
        for name, values in headers.items():
            for value in values if isinstance(values, list) else [values]:
                self.send_header(name, value)
            has_length = has_length or name.lower() == "content-length"
        if not has_length:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = handle_any


def serve(args: argparse.Namespace) -> int:
    keys = {ak: (sk, token) for ak, sk, token in args.key}
    config = Config(region=args.region, service=args.service, keys=keys, max_skew=args.max_skew_seconds,
                    echo=args.echo_like_aws)
    server = ProxyServer(("127.0.0.1", args.port), config, args.upstream, args.log)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


# -- self-test -------------------------------------------------------------------

VECTOR_KEY = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
VECTOR_TIME = dt.datetime(2015, 8, 30, 12, 36, 0, tzinfo=dt.timezone.utc)
# From the AWS SigV4 test suite (awslabs' aws-c-auth suite, as shipped in the
# aws-sigv4 crate under aws-signing-test-suite/v4/<name>/; get-vanilla's value
# is the one the AWS documentation publishes). The request paths here are as
# the suite writes them (decoded); the proxy would see them percent-encoded
# once more, and encodes again, which is what double encoding means.
VECTORS = [
    ("get-vanilla", "GET", "/", [], b"", None,
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("get-vanilla-query-order-encoded", "GET", "/?Param-3=Value3&Param=Value2&%E1%88%B4=Value1", [], b"",
     None, "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac"),
    ("get-vanilla-query-unreserved", "GET",
     "/?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
     "=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", [], b"", None,
     "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"),
    ("get-utf8", "GET", "/\u1234", [], b"", None,
     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
    ("get-slashes-normalized", "GET", "//example//", [], b"", None,
     "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"),
    ("get-vanilla-with-session-token", "GET", "/", [], b"",
     "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
     "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"),
    ("post-x-www-form-urlencoded", "POST", "/",
     [("Content-Type", "application/x-www-form-urlencoded"), ("Content-Length", "13"),
      ("X-Amz-Content-Sha256", hashlib.sha256(b"Param1=value1").hexdigest())],
     b"Param1=value1", None, "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"),
]


class _Results:
    def __init__(self) -> None:
        self.failures = 0

    def check(self, name: str, condition: bool, detail: object = "") -> None:
        if condition:
            print(f"ok    {name}", flush=True)
        else:
            self.failures += 1
            print(f"FAIL  {name}: {detail}", flush=True)


def _vector_checks(results: _Results) -> None:
    for name, method, target, extra, body, token, signature in VECTORS:
        config = Config("us-east-1", "service", {VECTOR_KEY[0]: (VECTOR_KEY[1], token)})
        headers = [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z"), *extra]
        if token:
            headers.append(("X-Amz-Security-Token", token))
        signed = ";".join(sorted(n.lower() for n, _ in headers))
        credential = f"{VECTOR_KEY[0]}/20150830/us-east-1/service/aws4_request"
        good = verify(config, method, target,
                      headers + [("Authorization", f"{ALGORITHM} Credential={credential}, "
                                  f"SignedHeaders={signed}, Signature={signature}")],
                      body, now=VECTOR_TIME)
        flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
        bad = verify(config, method, target,
                     headers + [("Authorization", f"{ALGORITHM} Credential={credential}, "
                                 f"SignedHeaders={signed}, Signature={flipped}")],
                     body, now=VECTOR_TIME)
        results.check(f"AWS test-suite vector {name}: published signature accepted, one changed digit refused",
                      good.ok and not bad.ok and bad.message == MSG_MISMATCH,
                      f"good={good.reason!r} bad={bad.reason!r}")


class _Upstream(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _UpstreamHandler)
        self.seen: list[dict] = []


class _UpstreamHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Upstream

    def log_message(self, format, *args):  # noqa: A002
        pass

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append({"method": self.command, "target": self.path,
                                 "headers": dict(self.headers.items()), "body": body})
        data = json.dumps({"upstream": True, "target": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Upstream", "fake")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


def botocore_sign(method: str, host: str, path: str, params: list[tuple[str, str]] | None,
                  body: bytes, headers: dict[str, str], key: tuple[str, str, str | None],
                  region: str, service: str, when: dt.datetime | None = None,
                  raw_query: str | None = None) -> dict[str, str]:
    """Headers of a request botocore signs (stock SigV4Auth), at `when` (default now).

    With `params`, botocore encodes the query the AWS way; with `raw_query`,
    botocore signs the raw pairs from the URL (its URL mode, not canonical
    for characters such as `,` and `*`).
    """
    url = f"http://{host}{path}" + (f"?{raw_query}" if raw_query else "")
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers), params=params or {})
    request.headers["Host"] = host
    signer = SigV4Auth(Credentials(*key), service, region)
    when = when or dt.datetime.now(dt.timezone.utc)
    request.context["timestamp"] = when.strftime(SIGV4_TIMESTAMP)
    signer._modify_request_before_signing(request)
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signer._inject_signature_to_request(request, signature)
    return dict(request.headers.items())


def _send(port: int, method: str, target: str, headers: dict[str, str], body: bytes = b"",
          chunked: bool = False) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for start in range(0, len(body), 7):
                piece = body[start:start + 7]
                conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            conn.send(b"0\r\n\r\n")
        else:
            if body or method in ("POST", "PUT"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def self_test() -> int:
    results = _Results()
    _vector_checks(results)

    region, service = "us-east-1", "es"
    plain = ("AKIDPLAINEXAMPLE", "plain/secret+key/EXAMPLE", None)
    temp = ("ASIATEMPEXAMPLE", "temp/secret+key/EXAMPLE", "FwoGZXIvYXdzEXAMPLE//token+value==")
    config = Config(region, service, {plain[0]: plain[1:], temp[0]: temp[1:]}, max_skew=300)

    upstream = _Upstream()
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    log_dir = tempfile.mkdtemp(prefix="sigv4-proxy-")
    log_path = os.path.join(log_dir, "proxy.jsonl")
    proxy = ProxyServer(("127.0.0.1", 0), config, f"http://127.0.0.1:{upstream.server_address[1]}", log_path)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    port = proxy.server_address[1]
    host = f"127.0.0.1:{port}"

    ndjson = (b'{"create":{"_index":"docker-pulls-2026","_id":"library-httpd-1795804500"}}\n'
              b'{"@timestamp":"2026-11-27T18:35:00Z","http":{"docker_hub":{"namespace":"library",'
              b'"name":"httpd","pull_count":2244658322,"star_count":3321,"collaborator_count":0}}}\n')
    params = [("filter_path", "errors,items.*._id"), ("pipeline", "docker-hub-pulls")]
    raw_query = "filter_path=errors,items.*._id&pipeline=docker-hub-pulls"
    ct = {"Content-Type": "application/x-ndjson"}
    expected_passes = 0
    requests_sent = 0

    def send(*args, **kwargs):
        nonlocal requests_sent
        requests_sent += 1
        return _send(port, *args, **kwargs)

    def refused(name: str, status: int, data: bytes, message: str, prefix: bool = False, key: str = "message"):
        try:
            got = json.loads(data).get(key, "")
        except ValueError:
            got = data
        same = got.startswith(message) if prefix else got == message
        results.check(name, status == 403 and same, f"{status} {data!r}")

    # 1. A valid bulk request with the docker-pulls query, sent raw.
    seen_before = len(upstream.seen)
    headers = botocore_sign("POST", host, "/_bulk", params, ndjson, ct, plain, region, service)
    status, rheaders, data = send("POST", "/_bulk?" + raw_query, headers, ndjson)
    expected_passes += 1
    got = upstream.seen[-1] if len(upstream.seen) > seen_before else {}
    results.check("valid POST /_bulk?filter_path=errors,items.*._id&pipeline=… (raw , and *) passes",
                  status == 200 and rheaders.get("x-upstream") == "fake"
                  and json.loads(data).get("upstream") is True, f"{status} {data!r}")
    results.check("upstream receives method, raw path+query, body and Content-Type unchanged",
                  got.get("method") == "POST" and got.get("target") == "/_bulk?" + raw_query
                  and got.get("body") == ndjson
                  and got.get("headers", {}).get("Content-Type") == "application/x-ndjson"
                  and got.get("headers", {}).get("Authorization") == headers["Authorization"],
                  {k: got.get(k) for k in ("method", "target")})

    # 2. The same signature with the query percent-encoded on the wire.
    status, _, data = send("POST", "/_bulk?filter_path=errors%2Citems.%2A._id&pipeline=docker-hub-pulls",
                           headers, ndjson)
    expected_passes += 1
    results.check("same signature, query sent percent-encoded (%2C, %2A) passes", status == 200, data)

    # 3. Percent-encoded path segments (double encoding in the canonical path).
    path = "/docker-pulls-2026/_doc/library%2Fhttpd%3A2026-11-27T18%3A35%3A00Z"
    doc = ndjson.splitlines()[1]
    headers = botocore_sign("PUT", host, path, [("op_type", "create")], doc,
                            {"Content-Type": "application/json"}, plain, region, service)
    status, _, data = send("PUT", path + "?op_type=create", headers, doc)
    expected_passes += 1
    results.check("percent-encoded path segments (%2F, %3A) pass and reach upstream as sent",
                  status == 200 and upstream.seen[-1]["target"] == path + "?op_type=create", (status, data))

    # 4. gzip body, signed with x-amz-content-sha256 over the compressed bytes.
    compressed = gzip.compress(ndjson)
    gz_headers = {**ct, "Content-Encoding": "gzip",
                  "X-Amz-Content-SHA256": hashlib.sha256(compressed).hexdigest()}
    headers = botocore_sign("POST", host, "/_bulk", params, compressed, gz_headers, plain, region, service)
    status, _, data = send("POST", "/_bulk?" + raw_query, headers, compressed)
    expected_passes += 1
    got = upstream.seen[-1]
    results.check("gzip body with x-amz-content-sha256 passes; upstream gets the gzip bytes and Content-Encoding",
                  status == 200 and got["body"] == compressed
                  and got["headers"].get("Content-Encoding") == "gzip", (status, data))

    # 5. Chunked transfer encoding: the signature covers the de-chunked body.
    headers = botocore_sign("POST", host, "/_bulk", params, ndjson, ct, plain, region, service)
    status, _, data = send("POST", "/_bulk?" + raw_query, headers, ndjson, chunked=True)
    expected_passes += 1
    results.check("chunked request body passes and is forwarded whole",
                  status == 200 and upstream.seen[-1]["body"] == ndjson, (status, data))

    # 6. Temporary credentials with their session token.
    headers = botocore_sign("POST", host, "/_bulk", params, ndjson, ct, temp, region, service)
    status, _, data = send("POST", "/_bulk?" + raw_query, headers, ndjson)
    expected_passes += 1
    results.check("session credentials with X-Amz-Security-Token pass", status == 200, (status, data))

    # 7. GET and HEAD without a body.
    headers = botocore_sign("GET", host, "/_ingest/pipeline/docker-hub-pulls", None, b"", {}, plain, region,
                            service)
    status, _, data = send("GET", "/_ingest/pipeline/docker-hub-pulls", headers)
    expected_passes += 1
    results.check("GET without a body passes", status == 200 and b"upstream" in data, (status, data))
    headers = botocore_sign("HEAD", host, "/docker-pulls-2026", None, b"", {}, plain, region, service)
    status, _, data = send("HEAD", "/docker-pulls-2026", headers)
    expected_passes += 1
    results.check("HEAD without a body passes", status == 200 and data == b"", (status, data))

    # Refusals.
    headers = botocore_sign("POST", host, "/_bulk", params, ndjson, ct, plain, region, service)
    status, _, data = send("POST", "/_bulk?" + raw_query, headers, ndjson.replace(b"2244658322", b"2244658323"))
    refused("tampered body refused: signature mismatch", status, data, MSG_MISMATCH)

    headers = botocore_sign("POST", host, "/_bulk", params, ndjson, ct, plain, "eu-west-1", service)
    status, _, data = send("POST", "/_bulk?" + raw_query, headers, ndjson)
    refused("wrong region refused", status, data, "Credential should be scoped to a valid region, not 'eu-west-1'. ")

    headers = botocore_sign("POST", host, "/_bulk", params, ndjson, ct, plain, region, "aoss")
    status, _, data = send("POST", "/_bulk?" + raw_query, headers, ndjson)
    refused("wrong service refused", status, data, "Credential should be scoped to correct service: 'es'. ")

    stale = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    headers = botocore_sign("POST", host, "/_bulk", params, ndjson, ct, plain, region, service, when=stale)
    status, _, data = send("POST", "/_bulk?" + raw_query, headers, ndjson)
    refused("X-Amz-Date 10 minutes old refused: expired", status, data,
            f"Signature expired: {stale.strftime(SIGV4_TIMESTAMP)} is now earlier than ", prefix=True)
    results.check("  … and the message ends with '(<now> - 5 min.)'", data.endswith(b' - 5 min.)"}'), data)

    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=10)
    headers = botocore_sign("POST", host, "/_bulk", params, ndjson, ct, plain, region, service, when=future)
    status, _, data = send("POST", "/_bulk?" + raw_query, headers, ndjson)
    refused("X-Amz-Date 10 minutes ahead refused: not yet current", status, data,
            f"Signature not yet current: {future.strftime(SIGV4_TIMESTAMP)} is still later than ", prefix=True)

    headers = botocore_sign("POST", host, "/_bulk", params, ndjson, ct, plain, region, service)
    headers["X-Amz-Date"] = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).strftime(SIGV4_TIMESTAMP)
    status, _, data = send("POST", "/_bulk?" + raw_query, headers, ndjson)
    refused("credential scope date != X-Amz-Date date refused", status, data,
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: ",
            prefix=True)

    headers = botocore_sign("POST", host, "/_bulk", params, ndjson, ct,
                            ("AKIDUNKNOWNEXAMPLE", plain[1], None), region, service)
    status, rheaders, data = send("POST", "/_bulk?" + raw_query, headers, ndjson)
    refused("unknown access key refused", status, data, MSG_BAD_TOKEN)
    results.check("  … with x-amzn-ErrorType UnrecognizedClientException",
                  rheaders.get("x-amzn-errortype") == "UnrecognizedClientException", rheaders)

    headers = botocore_sign("POST", host, "/_bulk", params, ndjson, ct, (temp[0], temp[1], None), region, service)
    status, _, data = send("POST", "/_bulk?" + raw_query, headers, ndjson)
    refused("session-token key signed without its token refused", status, data, MSG_BAD_TOKEN)

    headers = botocore_sign("POST", host, "/_bulk", params, ndjson, ct, (temp[0], temp[1], "other-token"), region,
                            service)
    status, _, data = send("POST", "/_bulk?" + raw_query, headers, ndjson)
    refused("session-token key with a different token refused", status, data, MSG_BAD_TOKEN)

    wrong_hash = {**ct, "X-Amz-Content-SHA256": hashlib.sha256(b"something else").hexdigest()}
    headers = botocore_sign("POST", host, "/_bulk", params, ndjson, wrong_hash, plain, region, service)
    status, _, data = send("POST", "/_bulk?" + raw_query, headers, ndjson)
    refused("x-amz-content-sha256 not the body's hash refused", status, data, MSG_CONTENT_SHA)

    headers = botocore_sign("POST", host, "/_bulk", params, ndjson, ct, plain, region, service)
    headers["Authorization"] = re.sub(r"(SignedHeaders=[^,]*?)host;", r"\1", headers["Authorization"])
    status, _, data = send("POST", "/_bulk?" + raw_query, headers, ndjson)
    refused("host missing from SignedHeaders refused", status, data, MSG_HOST_UNSIGNED)

    status, _, data = send("POST", "/_bulk?" + raw_query, {**ct, "Host": host}, ndjson)
    refused("unsigned request refused", status, data,
            "User: anonymous is not authorized to perform: es:ESHttpPost", key="Message")

    status, _, data = send("POST", "/_bulk?" + raw_query,
                           {**ct, "Host": host, "Authorization": "Basic ZWxhc3RpYzpzZWNyZXQ="}, ndjson)
    refused("Basic credentials refused as a malformed AWS4 header (credential not echoed)", status, data,
            "Authorization header requires 'Credential' parameter.", prefix=True)
    results.check("  … the Basic credential is not echoed", b"ZWxhc3RpYzpzZWNyZXQ" not in data, data)

    headers = botocore_sign("POST", host, "/_bulk", None, ndjson, ct, plain, region, service, raw_query=raw_query)
    status, _, data = send("POST", "/_bulk?" + raw_query, headers, ndjson)
    refused("query signed un-encoded (botocore URL mode: ',' and '*' left bare) refused, as AWS would", status,
            data, MSG_MISMATCH)

    # OpenSearch Serverless: x-amz-content-sha256 is required.
    aoss = Config(region, "aoss", {plain[0]: plain[1:]})
    for with_header in (False, True):
        extra = {"X-Amz-Content-SHA256": hashlib.sha256(ndjson).hexdigest()} if with_header else {}
        headers = botocore_sign("POST", host, "/_bulk", params, ndjson, {**ct, **extra}, plain, region, "aoss")
        verdict = verify(aoss, "POST", "/_bulk?" + raw_query, list(headers.items()), ndjson)
        results.check("aoss: " + ("signed x-amz-content-sha256 passes" if with_header
                                  else "request without x-amz-content-sha256 refused"),
                      verdict.ok == with_header, verdict.reason)

    results.check("refused requests never reach upstream",
                  len(upstream.seen) == expected_passes, f"{len(upstream.seen)} != {expected_passes}")

    # --echo-like-aws: refusals carry the credentials as AWS's do; without it
    # only the scheme is echoed.
    echo = Config(region, service, {temp[0]: temp[1:]}, max_skew=300, echo=True)
    basic = [("Host", host), ("Authorization", "Basic d3JpdGVyOnB3LXNlY3JldA==")]
    for config_, expected in ((echo, "Authorization=Basic d3JpdGVyOnB3LXNlY3JldA=="),
                              (config, "Authorization=Basic")):
        verdict = verify(config_, "POST", "/_bulk", basic, ndjson)
        results.check(f"Basic refused, message ends in {expected!r}",
                      not verdict.ok and verdict.message.endswith(expected), verdict.message)
    wrong = (temp[0], "not/the/secret", temp[2])
    headers = botocore_sign("POST", host, "/_bulk", None, ndjson, ct, wrong, region, service)
    verdict = verify(echo, "POST", "/_bulk", list(headers.items()), ndjson)
    results.check("echo: a mismatch shows the canonical string (token included) and the string to sign",
                  not verdict.ok and verdict.reason == "signature mismatch"
                  and "The Canonical String for this request should have been" in verdict.message
                  and f"x-amz-security-token:{temp[2]}" in verdict.message
                  and "The String-to-Sign should have been" in verdict.message, verdict.message)
    verdict = verify(Config(region, service, {temp[0]: temp[1:]}, max_skew=300), "POST", "/_bulk",
                     list(headers.items()), ndjson)
    results.check("without echo a mismatch shows no canonical string",
                  not verdict.ok and verdict.message == MSG_MISMATCH, verdict.message)

    proxy.shutdown()
    proxy.server_close()
    upstream.shutdown()
    upstream.server_close()
    with open(log_path, encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    keys = {"method", "path", "query", "verdict", "reason", "access_key", "signed_headers", "payload_hash_header"}
    first = lines[0] if lines else {}
    results.check("one JSON log line per request, with the documented fields",
                  len(lines) == requests_sent and all(keys <= set(line) for line in lines),
                  f"{len(lines)} lines for {requests_sent} requests")
    results.check("log line of the valid bulk request",
                  first.get("verdict") == "ok" and first.get("path") == "/_bulk" and first.get("query") == raw_query
                  and first.get("access_key") == plain[0]
                  and first.get("signed_headers") == ["content-type", "host", "x-amz-date"]
                  and first.get("payload_hash_header") is None, first)
    results.check("log verdicts: ok for each forwarded request, refused for the rest",
                  sum(line["verdict"] == "ok" for line in lines) == expected_passes,
                  [line["verdict"] for line in lines])
    gz_line = lines[3] if len(lines) > 3 else {}
    results.check("log line records x-amz-content-sha256 and Content-Encoding",
                  gz_line.get("payload_hash_header") == hashlib.sha256(compressed).hexdigest()
                  and gz_line.get("content_encoding") == "gzip", gz_line)

    outcome = f"FAILED, {results.failures} case(s)" if results.failures else "all passed"
    print(f"sigv4_proxy self-test: {outcome}")
    return 1 if results.failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--self-test", action="store_true", help="run the self-test and exit")
    parser.add_argument("--upstream", help="URL requests are forwarded to once verified")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--service", default="es", help="es (OpenSearch Service) or aoss (Serverless)")
    parser.add_argument("--key", action="append", type=parse_key, default=[],
                        help="AKID:SECRET[:SESSION_TOKEN], repeatable")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-skew-seconds", type=int, default=300)
    parser.add_argument("--log", help="append one JSON line per request to this file")
    parser.add_argument("--echo-like-aws", action="store_true",
                        help="refusals echo the Authorization header and the canonical request "
                             "(security token included) exactly as AWS does")
    args = parser.parse_args(argv)
    if args.self_test:
        return self_test()
    if not args.upstream or not args.key:
        parser.error("--upstream and at least one --key are required (or --self-test)")
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
