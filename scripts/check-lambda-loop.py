"""The README's "The Lambda loop", run as printed (scripts/test runs it).

Terminal 1 is the block's first line, `scripts/lambda-local`, with `--fakes`
(its comment's no-network variant: CI has no internet). Terminal 2 is a new
shell with the PATH the user had before `scripts/setup` (no .venv on it),
running the block's other lines as they are, one after the other. Each must
succeed, and the dry run must return documents. Port 9000 (what the printed
commands use) when free; otherwise another port, with `-P N` added to each
invoke, as scripts/lambda-local prints it.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = str(ROOT / ".venv" / "bin")


def readme_block():
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## The Lambda loop\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    lines = [line.split(" #", 1)[0].strip() for line in block.splitlines()]
    return [line for line in lines if line]


def port_free(port):
    for family, host in ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                return False
    return True


def free_port():
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
        probe.bind(("::1", 0))
        return probe.getsockname()[1]


def listening(port):
    try:
        with socket.create_connection(("::1", port), timeout=1):
            return True
    except OSError:
        return False


def json_documents(text):
    """The JSON values printed one after the other (cargo lambda invoke
    prints each answer as JSON, pretty or not)."""
    decoder, values, index = json.JSONDecoder(), [], 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index == len(text):
            return values
        value, index = decoder.raw_decode(text, index)
        values.append(value)


def user_environment():
    """The shell a user opens for terminal 2: no venv activated."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p.rstrip("/") != VENV_BIN)
    return env


def main():
    lines = readme_block()
    terminal1, terminal2 = lines[0], lines[1:]
    if terminal1 != "scripts/lambda-local":
        sys.exit(f"check-lambda-loop: the README's first line is {terminal1!r}, not scripts/lambda-local")
    if not any(line.startswith("cargo lambda invoke") for line in terminal2):
        sys.exit("check-lambda-loop: the README's Lambda loop invokes nothing")

    env = user_environment()
    bare = subprocess.run(["bash", "-c", "cargo lambda --version"], cwd=ROOT, env=env, capture_output=True, text=True)
    print(f"terminal 2 before its first line: `cargo lambda` {'works' if bare.returncode == 0 else 'is not found'}")

    port = 9000
    if not port_free(port):
        port = free_port()
        print(f"port 9000 is busy here; using {port} (-P {port} added to the invokes)")
        terminal2 = [
            line.replace("cargo lambda invoke docker-pulls", f"cargo lambda invoke docker-pulls -P {port}")
            for line in terminal2
        ]
    command = [terminal1, "--fakes"] + ([] if port == 9000 else ["--port", str(port)])
    log = tempfile.TemporaryFile(mode="w+")
    print(f"terminal 1: {' '.join(command)}")
    watch = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        run(watch, port, terminal2, env)
    except BaseException:
        log.seek(0)
        print("scripts/lambda-local's output:\n" + "".join(log.readlines()[-40:]), file=sys.stderr)
        raise
    finally:
        # Ctrl-C, as the README says.
        try:
            os.killpg(watch.pid, signal.SIGINT)
            watch.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(watch.pid, signal.SIGKILL)
            watch.wait()


def run(watch, port, terminal2, env):
    """Wait for terminal 1, then type terminal 2."""
    deadline = time.monotonic() + 600
    while not listening(port):
        if watch.poll() is not None:
            sys.exit(f"check-lambda-loop: scripts/lambda-local exited with {watch.returncode}")
        if time.monotonic() > deadline:
            sys.exit("check-lambda-loop: scripts/lambda-local did not listen within 10 minutes")
        time.sleep(0.5)

    # One shell, the lines in order, as a user types them.
    script = "set -e\n" + "".join(f"echo '$ {line}' >&2\n{line}\n" for line in terminal2)
    print("terminal 2:\n  " + "\n  ".join(terminal2))
    started = time.monotonic()
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=900)
    if result.returncode != 0:
        sys.exit(f"check-lambda-loop: terminal 2 failed ({result.returncode}):\n{result.stderr}\n{result.stdout}")
    outputs = json_documents(result.stdout)
    if len(outputs) != sum(line.startswith("cargo lambda invoke") for line in terminal2):
        sys.exit(f"check-lambda-loop: expected one JSON answer per invoke:\n{result.stdout}")
    dry = outputs[0]
    if dry.get("dry_run") is not True or not dry.get("documents"):
        sys.exit(f"check-lambda-loop: the dry run returned no documents: {dry}")
    print(f"terminal 2: {len(outputs)} invokes answered in {time.monotonic() - started:.0f} s; "
          f"the dry run fetched {len(dry['documents'])} documents")


if __name__ == "__main__":
    main()
