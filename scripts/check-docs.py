#!/usr/bin/env python3
"""Every fenced `sh` block of README.md and docs/*.md, run as printed.

A stand-in AWS account is started on this machine: moto serves SSM, S3, SQS,
SNS, CloudWatch Logs and CloudFormation (a stack named `docker-pulls` with
the outputs template.yaml declares, over real moto resources), and
`cargo lambda watch` serves the function's Invoke API against it, with the
fake Docker Hub and the fake Elasticsearch of the tests. The AWS CLI (pip
`awscli`, from .venv) reaches them through the standard
`AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_LAMBDA` variables, so the blocks
run with the template's names (stack, function, outputs) as printed.

Each page starts from a fresh account and runs its blocks in order in one
`bash -e -o pipefail` session per block, the variables a block sets carried
to the next (one reader, one terminal). A block may say, in an HTML comment
right above its fence:

    <!-- check: parse: WHY -->     cannot run here (WHY: needs a real account,
                                   a Kibana, ...); its commands are parsed
                                   instead: `aws` by the AWS CLI's own parser,
                                   `sam` by SAM CLI's, `cargo lambda` and
                                   `curl` against their --help, the whole
                                   block by `bash -n`
    <!-- check: given: STATE,... -->   run after making STATE true: a
                                   `configured` deployment (images and the
                                   fake Elasticsearch in SSM), `archived`
                                   runs, a `spooled` document, a failed
                                   invocation in the `dead-letter` queue,
                                   an `images.txt`

Blocks marked `parse` are listed at the end with their reason. Exit 1 when
any block fails.

usage: scripts/check-docs.py [FILE.md ...]
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
REGION = "eu-west-1"

# AWS CLI v1 sends SQS calls to <region>.queue.amazonaws.com whatever
# AWS_ENDPOINT_URL says (awscli/customizations/overridesslcommonname.py
# yields only to --endpoint-url); v2 and every other service honour the
# variable. So `aws` is this shim, which adds the flag for sqs only.
AWS_SHIM = """#!/bin/sh
if [ "$1" = sqs ] && [ -n "$AWS_ENDPOINT_URL" ]; then
    exec "{aws}" --endpoint-url "$AWS_ENDPOINT_URL" "$@"
fi
exec "{aws}" "$@"
"""
STACK = "docker-pulls"
PREFIX = "/docker-pulls"
BLOCK_TIMEOUT = 300

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
MARKER = re.compile(r"<!--\s*check:\s*(?P<kind>parse|given)\s*:\s*(?P<arg>.*?)\s*-->", re.S)
GIVENS = {"configured", "archived", "spooled", "dead-letter", "images.txt"}


@dataclass
class Block:
    path: Path
    line: int
    text: str
    parse_reason: str | None = None
    given: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def pages(args: list[str]) -> list[Path]:
    if args:
        return [Path(a).resolve() for a in args]
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks_of(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        if match.group("lang") != "sh":
            continue
        indent = match.group("indent")
        body = "\n".join(
            line[len(indent):] if line.startswith(indent) else line
            for line in match.group("body").splitlines()
        )
        line = text.count("\n", 0, match.start()) + 1
        block = Block(path, line, body + "\n")
        before = text[: match.start()].rstrip().splitlines()
        previous = before[-1].strip() if before else ""
        # A marker may span lines: take the comment that ends right above.
        if previous.endswith("-->"):
            start = text.rfind("<!--", 0, match.start())
            marker = MARKER.fullmatch(text[start : match.start()].strip())
            if marker is None:
                raise SystemExit(f"{block.where}: an HTML comment above a sh block that is not `<!-- check: parse|given: ... -->`")
            if marker.group("kind") == "parse":
                block.parse_reason = " ".join(marker.group("arg").split())
            else:
                block.given = [g.strip() for g in marker.group("arg").split(",") if g.strip()]
                unknown = set(block.given) - GIVENS
                if unknown:
                    raise SystemExit(f"{block.where}: unknown given {sorted(unknown)}; known: {sorted(GIVENS)}")
        found.append(block)
    return found


# --- the stand-in account ---------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_free(port: int) -> bool:
    for family, host in ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                return False
    return True


def wait_for(url: str, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"check-docs: {what} did not start at {url}")
            time.sleep(0.3)


# The stack's outputs, over moto resources, with template.yaml's names.
STAND_IN_STACK = {
    "Resources": {
        "SpoolBucket": {
            "Type": "AWS::S3::Bucket",
            "Properties": {"BucketName": "docker-pulls-spool", "VersioningConfiguration": {"Status": "Enabled"}},
        },
        "AlarmTopic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "docker-pulls-alarms"}},
        "DockerPullsLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/aws/lambda/docker-pulls"}},
    },
    "Outputs": {
        "FunctionName": {"Value": "docker-pulls"},
        "FunctionArn": {"Value": f"arn:aws:lambda:{REGION}:123456789012:function:docker-pulls"},
        # Filled in by Account.fresh: a queue made through the SQS API has
        # moto's own address in its URL, as a real queue has AWS's.
        "DeadLetterQueueUrl": {"Value": "QUEUE_URL"},
        "DeadLetterQueueArn": {"Value": f"arn:aws:sqs:{REGION}:123456789012:docker-pulls-dlq"},
        "LogGroupName": {"Value": {"Ref": "DockerPullsLogGroup"}},
        "AlarmTopicArn": {"Value": {"Ref": "AlarmTopic"}},
        "SpoolBucketName": {"Value": {"Ref": "SpoolBucket"}},
        "ArchiveLocation": {"Value": {"Fn::Sub": "s3://${SpoolBucket}/archive/"}},
        "DashboardName": {"Value": "docker-pulls"},
        "BadgeBucketName": {"Value": "docker-pulls-badges"},
        "BadgeBaseUrl": {"Value": "https://docker-pulls-badges.s3.amazonaws.com/badges/"},
        "AlertTopicArn": {"Value": f"arn:aws:sns:{REGION}:123456789012:docker-pulls-alerts"},
    },
}


def template_outputs() -> set[str]:
    """The Outputs template.yaml declares (read with SAM's own YAML loader,
    which knows the !Ref/!Sub tags)."""
    from samtranslator.yaml_helper import yaml_parse  # type: ignore

    template = yaml_parse((ROOT / "template.yaml").read_text())
    return set(template.get("Outputs", {}))


class Account:
    """moto + the fakes + cargo lambda watch, for one whole check."""

    def __init__(self, work: Path):
        self.work = work
        self.processes: list[subprocess.Popen] = []
        self.moto_url = ""
        self.watch_url = ""
        self.hub_url = ""
        self.es_url = ""

    def start(self) -> None:
        missing = template_outputs() ^ set(STAND_IN_STACK["Outputs"])
        if missing:
            raise SystemExit(f"check-docs: the stand-in stack's outputs differ from template.yaml's: {sorted(missing)}")
        moto_port = free_port()
        self.moto_url = f"http://127.0.0.1:{moto_port}"
        self._spawn([str(VENV_BIN / "python3"), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)], "moto.log")
        wait_for(f"{self.moto_url}/moto-api/", "moto")

        fakes = self._spawn([str(TARGET / "debug" / "examples" / "fake_services"), "--es-port", "9200"], "fakes.log", stdout=subprocess.PIPE)
        ready = json.loads(fakes.stdout.readline())
        self.hub_url, self.es_url = ready["hub"], ready["es"]

        # 9000, where `cargo lambda invoke` looks, when it is free.
        watch_port = 9000 if port_free(9000) else free_port()
        self.watch_port = watch_port
        self.watch_url = f"http://[::1]:{watch_port}"
        env_file = self.work / "lambda.env"
        env_file.write_text(
            "\n".join(
                [
                    f"SSM_PREFIX={PREFIX}",
                    "SPOOL_BUCKET=docker-pulls-spool",
                    "ARCHIVE_BUCKET=docker-pulls-spool",
                    f"DOCKER_HUB_URL={self.hub_url}",
                    f"AWS_ENDPOINT_URL_SSM={self.moto_url}",
                    f"AWS_ENDPOINT_URL_S3={self.moto_url}",
                    "AWS_ACCESS_KEY_ID=test",
                    "AWS_SECRET_ACCESS_KEY=test",
                    f"AWS_REGION={REGION}",
                    "AWS_EC2_METADATA_DISABLED=true",
                ]
            )
            + "\n"
        )
        env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
        self._spawn(
            ["cargo", "lambda", "watch", "-A", "::1", "-P", str(watch_port), "--env-file", str(env_file)],
            "watch.log",
            cwd=ROOT,
            env=env,
        )
        wait_for(f"{self.watch_url}/", "cargo lambda watch", seconds=600)

    def _spawn(self, args, log, stdout=None, **kwargs) -> subprocess.Popen:
        handle = open(self.work / log, "wb")
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=stdout or handle,
            stderr=handle,
            start_new_session=True,
            **kwargs,
        )
        self.processes.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.processes):
            try:
                os.killpg(proc.pid, signal.SIGINT if proc is self.processes[-1] else signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    # -- state -------------------------------------------------------------

    def client(self, service: str):
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.moto_url,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def fresh(self) -> None:
        """A new account: nothing but the stack."""
        urllib.request.urlopen(urllib.request.Request(f"{self.moto_url}/moto-api/reset", method="POST"), timeout=10).read()
        queue = self.client("sqs").create_queue(QueueName="docker-pulls-dlq")["QueueUrl"]
        template = json.dumps(STAND_IN_STACK).replace("QUEUE_URL", queue)
        self.client("cloudformation").create_stack(StackName=STACK, TemplateBody=template)

    def invoke(self, event: dict) -> dict:
        request = urllib.request.Request(
            f"{self.watch_url}/2015-03-31/functions/docker-pulls/invocations",
            data=json.dumps(event).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=BLOCK_TIMEOUT) as answer:
            return json.loads(answer.read() or b"null")

    def configure(self, es_url: str | None = None) -> None:
        ssm = self.client("ssm")
        for name, value in [
            ("images", "httpd,library/mysql,radoondas/netatmobeat"),
            ("elasticsearch/url", es_url or self.es_url),
        ]:
            ssm.put_parameter(Name=f"{PREFIX}/{name}", Value=value, Type="String", Overwrite=True)

    def given(self, state: str, cwd: Path) -> None:
        if state == "configured":
            self.configure()
        elif state == "archived":
            self.configure()
            for _ in range(2):
                self.invoke({})
        elif state == "spooled":
            # Elasticsearch unreachable for one run: its documents wait in the spool.
            self.configure(es_url=f"http://127.0.0.1:{free_port()}")
            self.invoke({})
            self.configure()
        elif state == "dead-letter":
            self.configure()
            queue = self.client("sqs").get_queue_url(QueueName="docker-pulls-dlq")["QueueUrl"]
            # What Lambda sends to an on-failure destination / DLQ for an
            # asynchronous invocation that failed: the original event inside.
            record = {
                "version": "1.0",
                "timestamp": "2026-12-07T10:00:00.000Z",
                "requestContext": {"requestId": "0", "functionArn": f"arn:aws:lambda:{REGION}:123456789012:function:docker-pulls:$LATEST", "condition": "RetriesExhausted", "approximateInvokeCount": 3},
                "requestPayload": json.loads((ROOT / "events" / "scheduled.json").read_text()),
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
                "responsePayload": {"errorType": "Elasticsearch", "errorMessage": "stand-in failure"},
            }
            self.client("sqs").send_message(QueueUrl=queue, MessageBody=json.dumps(record))
        elif state == "images.txt":
            (cwd / "images.txt").write_text("\n".join(f"acme/app-{n:03}" for n in range(250)) + "\n")


# --- running and parsing ----------------------------------------------------

def block_environment(account: Account, home: Path) -> dict[str, str]:
    """A clean shell: no venv activated, no AWS profile; the AWS CLI and the
    built binary on PATH; the standard endpoint variables."""
    system_path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p.rstrip("/") != str(VENV_BIN)]
    shim = account.work / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "aws").write_text(AWS_SHIM.format(aws=VENV_BIN / "aws"))
    (shim / "aws").chmod(0o755)
    return {
        "PATH": os.pathsep.join([str(shim), str(VENV_BIN), str(TARGET / "debug"), *system_path]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "CARGO_TARGET_DIR": str(TARGET),
        "CARGO_HOME": os.environ.get("CARGO_HOME", str(Path.home() / ".cargo")),
        "RUSTUP_HOME": os.environ.get("RUSTUP_HOME", str(Path.home() / ".rustup")),
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": account.moto_url,
        "AWS_ENDPOINT_URL_LAMBDA": account.watch_url,
        "AWS_EC2_METADATA_DISABLED": "true",
        "DOCKER_HUB_URL": account.hub_url,
        "SSM_PREFIX": PREFIX,
    }


def run_block(block: Block, cwd: Path, env: dict[str, str], state: Path) -> tuple[bool, str]:
    script = cwd / ".check-docs-block.sh"
    script.write_text(
        "set -a\n"
        f"[ -f {shlex.quote(str(state))} ] && . {shlex.quote(str(state))}\n"
        "set -e -o pipefail\n"
        f"{block.text}"
        f"\nexport -p > {shlex.quote(str(state))}\n"
    )
    try:
        done = subprocess.run(
            ["bash", str(script)], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=BLOCK_TIMEOUT,
        )
    except subprocess.TimeoutExpired as timeout:
        return False, f"timed out after {BLOCK_TIMEOUT}s\n{timeout.stdout or ''}{timeout.stderr or ''}"
    finally:
        script.unlink(missing_ok=True)
    return done.returncode == 0, done.stdout + done.stderr


def commands(text: str) -> list[list[str]]:
    """The simple commands of a block, as words: continuations joined,
    comments dropped, split at pipes, lists and command substitutions."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;()<>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            words = list(lexer)
        except ValueError:
            continue
        current: list[str] = []
        for word in words + [";"]:
            if set(word) <= set("|&;()<>"):
                if current:
                    found.append(current)
                current = []
            else:
                current.append(word)
    # `$(aws ...)`: shlex keeps `$` as a word of its own before `(`.
    return [[w for w in c if w != "$"] for c in found if [w for w in c if w != "$"]]


def placeholders(word: str) -> str:
    """`$NAME` and `${NAME}` as a value of the right shape (`xname`): parsing
    sees the word as the shell would hand it over, without a real value."""
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: "x" + m.group(1).lower().replace("_", ""), word)


def parse_aws(words: list[str], env: dict[str, str]) -> str | None:
    """The AWS CLI's own parser, against an endpoint nobody listens on: a
    command that parses fails to connect; one that does not says why."""
    words = [placeholders(w) for w in words]
    dead = f"http://127.0.0.1:{free_port()}"
    parse_env = {**env, "AWS_ENDPOINT_URL": dead, "AWS_ENDPOINT_URL_LAMBDA": dead, "AWS_MAX_ATTEMPTS": "1"}
    args = [w if not w.startswith("file://") else "{}" if w.endswith(".json") else "x" for w in words[1:]]
    done = subprocess.run([str(VENV_BIN / "aws"), *args, "--cli-connect-timeout", "1"], env=parse_env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if "Could not connect to the endpoint URL" in done.stderr or done.returncode == 0:
        return None
    return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"


SAM_PARSE = r"""
import sys, click
from samcli.cli.main import cli
args = sys.argv[1:]
ctx = cli.make_context("sam", list(args))
command, rest = cli, ctx.protected_args + ctx.args
while isinstance(command, click.Group):
    name, command, rest = command.resolve_command(ctx, rest)
    ctx = command.make_context(name, rest, parent=ctx)
    rest = ctx.protected_args + ctx.args if isinstance(command, click.Group) else []
"""


def parse_sam(words: list[str]) -> str | None:
    done = subprocess.run([str(VENV_BIN / "python3"), "-c", SAM_PARSE, *words[1:]], capture_output=True, text=True, timeout=120)
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["?"])[-1]


def help_flags(args: list[str]) -> set[str]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"})
    return set(re.findall(r"--[a-z][a-z0-9-]*", done.stdout + done.stderr))


def parse_block(block: Block, env: dict[str, str]) -> list[str]:
    problems = []
    syntax = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
    if syntax.returncode != 0:
        problems.append(f"bash -n: {syntax.stderr.strip()}")
    for words in commands(block.text):
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            words = words[1:]
        if not words:
            continue
        tool, problem = words[0], None
        if tool == "aws":
            problem = parse_aws(words, env)
        elif tool == "sam":
            problem = parse_sam(words)
        elif tool == "docker-pulls" or words[:3] == ["cargo", "run", "--"] or words[:4] == ["cargo", "run", "--release", "--"]:
            args = words[words.index("--") + 1 :] if tool == "cargo" else words[1:]
            done = subprocess.run([str(TARGET / "debug" / "docker-pulls"), *args, "--help"], env=env,
                                  capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                problem = (done.stderr.strip().splitlines() or ["?"])[0]
        elif tool in ("cargo", "curl"):
            if tool == "cargo" and words[1:2] == ["lambda"]:
                sub = [w for w in words[2:3]]
                known = help_flags(["cargo", "lambda", *sub, "--help"])
            elif tool == "curl":
                known = help_flags(["curl", "--help", "all"])
            else:
                continue
            unknown = [w.split("=")[0] for w in words if w.startswith("--") and w.split("=")[0] not in known]
            if unknown:
                problem = f"unknown flags {unknown}"
        if problem:
            problems.append(f"`{' '.join(words)[:80]}`: {problem}")
    return problems


def main() -> int:
    todo = [(page, blocks_of(page)) for page in pages(sys.argv[1:])]
    failed, parsed, ran = [], [], 0
    with tempfile.TemporaryDirectory(prefix="check-docs.") as tmp:
        work = Path(tmp)
        account = Account(work)
        try:
            account.start()
            for page, blocks in todo:
                if not blocks:
                    continue
                account.fresh()
                # A checkout of the repository as the reader has it.
                cwd = work / "checkout" / page.stem
                files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                                       capture_output=True, text=True, check=True).stdout.split("\n")
                for name in filter(None, files):
                    source = ROOT / name
                    if source.is_file():
                        (cwd / name).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(source, cwd / name)
                # One reader, one machine: ~/.aws/config carries over.
                home = work / "home"
                home.mkdir(exist_ok=True)
                env = block_environment(account, home)
                state = work / f"{page.stem}.state"
                for block in blocks:
                    if block.parse_reason is not None:
                        problems = parse_block(block, env)
                        parsed.append(block)
                        status = "parsed" if not problems else "FAILED"
                        print(f"{status:7} {block.where} (parse only: {block.parse_reason})", flush=True)
                        if problems:
                            failed.append(block)
                            for problem in problems:
                                print(f"        {problem}")
                        continue
                    for state_name in block.given:
                        account.given(state_name, cwd)
                    ok, output = run_block(block, cwd, env, state)
                    ran += 1
                    print(f"{'ran' if ok else 'FAILED':7} {block.where}", flush=True)
                    if ok and os.environ.get("CHECK_DOCS_VERBOSE"):
                        print("        " + "\n        ".join(output.strip().splitlines()[-12:]))
                    if not ok:
                        failed.append(block)
                        print("        " + "\n        ".join(output.strip().splitlines()[-25:]))
        finally:
            account.stop()
            if failed:
                for log in ("watch.log", "fakes.log"):
                    path = work / log
                    if path.exists():
                        tail = path.read_text(errors="replace").splitlines()[-15:]
                        print(f"--- {log} (last lines)\n" + "\n".join(tail))
    print(f"\n{ran} blocks ran, {len(parsed)} parsed only, {len(failed)} failed")
    if parsed:
        print("parsed only (cannot run here):")
        for block in parsed:
            print(f"  {block.where}: {block.parse_reason}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
