"""The SAM checks that need SAM CLI's own code (scripts/check-sam runs them
with SAM CLI's Python). Each reads the files the way SAM CLI does, with its
own classes, so a change in SAM CLI's behaviour shows up here.

  check-sam.py builders             SAM CLI and aws-lambda-builders new enough
  check-sam.py config               samconfig.toml: build, deploy and sync agree,
                                    also after `sam deploy --guided` rewrote it
  check-sam.py parameters           the ARN parameters' AllowedPattern
  check-sam.py architecture         the architecture template.yaml names
  check-sam.py switch SRC DST ARCH  write a copy of SRC with that architecture
  check-sam.py elf FILE ARCH        FILE is an ELF executable for ARCH

Each subcommand also shows, on a fixture, that it fails on the mistake it
exists for.
"""

import contextlib
import io
import os
import re
import shutil
import subprocess
import struct
import sys
import tempfile
from pathlib import Path
from unittest import mock

import click

FUNCTION = "DockerPullsFunction"
ROOT = Path(__file__).resolve().parent.parent
# The dev stack `sam sync` deploys (samconfig.toml), never the deployed one.
SYNC_STACK = "docker-pulls-dev"
# SAM CLI and aws-lambda-builders versions the checks ran with: older
# builders (SAM CLI 1.156: 1.63) copy <source>/target/lambda/<bin>/bootstrap
# and ignore CARGO_TARGET_DIR.
MINIMUM_SAM_CLI = (1, 170, 0)
MINIMUM_BUILDERS = (1, 67, 0)
# ELF e_machine values.
ELF_MACHINES = {"x86_64": 62, "arm64": 183}


class CheckFailed(Exception):
    pass


def version(text):
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


# --- builders ---------------------------------------------------------------


def check_builders():
    import aws_lambda_builders
    import samcli
    from aws_lambda_builders.workflows.rust_cargo.cargo_lambda import SubprocessCargoLambda

    sam, builders = samcli.__version__, aws_lambda_builders.__version__
    print(f"SAM CLI {sam}, aws-lambda-builders {builders}")
    if version(sam) < MINIMUM_SAM_CLI:
        raise CheckFailed(f"SAM CLI {sam} is older than {'.'.join(map(str, MINIMUM_SAM_CLI))} (pip install -U aws-sam-cli)")
    if version(builders) < MINIMUM_BUILDERS or not hasattr(SubprocessCargoLambda, "resolve_workspace_layout"):
        raise CheckFailed(
            f"aws-lambda-builders {builders} does not ask `cargo metadata` for the target directory: "
            "it would copy a missing or stale target/lambda/docker-pulls/bootstrap (pip install -U aws-sam-cli)"
        )


# --- reading samconfig.toml as each command does ----------------------------


def command_cli(name):
    if name == "build":
        from samcli.commands.build.command import cli
    elif name == "deploy":
        from samcli.commands.deploy.command import cli
    elif name == "sync":
        from samcli.commands.sync.command import cli
    else:
        raise ValueError(name)
    return cli


def read_config(directory, command):
    """What `sam <command>` takes from samconfig.toml: SAM CLI's ConfigProvider,
    a fresh SamConfig each time (SamConfig.get_all updates the cached global
    table in place, so one reader for several commands mixes them up)."""
    from samcli.cli.cli_config_file import ConfigProvider

    with click.Context(command_cli(command), info_name=command):
        return ConfigProvider(section="parameters")(Path(directory, "samconfig.toml"), "default", [command])


def parameter_overrides(config):
    from samcli.cli.types import CfnParameterOverridesType

    return CfnParameterOverridesType().convert(config.get("parameter_overrides"), None, None)


def stacks(template, overrides, region="us-east-1"):
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    with contextlib.redirect_stderr(io.StringIO()):
        found, _ = SamLocalStackProvider.get_stacks(
            str(template), parameter_overrides=overrides, global_parameter_overrides={"AWS::Region": region}
        )
    return found


def built_function(template, overrides):
    """What `sam build` builds for the function with these parameters."""
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider

    with contextlib.redirect_stderr(io.StringIO()):
        function = SamFunctionProvider(
            stacks(template, overrides), ignore_code_extraction_warnings=True
        ).get(FUNCTION)
    if function is None:
        raise CheckFailed(f"{template}: no {FUNCTION}")
    return {
        "architectures": function.architectures,
        "runtime": function.runtime,
        "handler": function.handler,
        "codeuri": os.path.relpath(function.codeuri, Path(template).parent) if function.codeuri else None,
        "packagetype": function.packagetype,
        "metadata": function.metadata,
    }


def agreement(directory, template):
    """Each command's reading of samconfig.toml (a fresh reader each) and the
    function it builds or deploys with those parameters: one architecture,
    one build."""
    seen = {}
    for command in ("build", "deploy", "sync"):
        config = read_config(directory, command)
        seen[command] = (config, built_function(template, parameter_overrides(config)))
        print(f"  sam {command}: Architectures={seen[command][1]['architectures']}")
    first = seen["build"][1]
    for command, (_, function) in seen.items():
        if function != first:
            raise CheckFailed(
                f"sam build and sam {command} disagree on the function: {first} vs {function}; "
                "the binary built is not the one deployed"
            )
    for command, (config, _) in seen.items():
        for key in ("template_file", "build_dir", "base_dir"):
            if key in config:
                raise CheckFailed(f"samconfig.toml sets {key} for sam {command}: build and deploy could read different templates")
    return {command: config for command, (config, _) in seen.items()}


def check_sync(directory, template, configs):
    sync, deploy = configs["sync"], configs["deploy"]
    if sync.get("stack_name") != SYNC_STACK or sync.get("stack_name") == deploy.get("stack_name"):
        raise CheckFailed(f"sam sync must deploy its own stack {SYNC_STACK}, not {sync.get('stack_name')!r}")
    if parameter_overrides(sync).get("ScheduleState") != "DISABLED":
        raise CheckFailed("sam sync's stack must not run on a schedule next to the deployed one")
    check_watch_excludes(directory, template, sync)


def check_watch_excludes(directory, template, sync):
    """`sam sync --watch` as SAM CLI wires it: the function's code trigger,
    with samconfig's watch_exclude, fed file events."""
    from samcli.cli.types import SyncWatchExcludeType
    from samcli.commands._utils.options import watch_exclude_option_callback
    from samcli.lib.providers.provider import ResourceIdentifier
    from samcli.lib.utils.code_trigger_factory import CodeTriggerFactory
    from watchdog.events import DirCreatedEvent, FileModifiedEvent

    if not sync.get("watch"):
        return
    values = sync.get("watch_exclude", [])
    excludes = watch_exclude_option_callback(
        None, None, tuple(SyncWatchExcludeType().convert(value, None, None) for value in values)
    )
    calls = []
    factory = CodeTriggerFactory(stacks(template, parameter_overrides(sync)), Path(template).parent)
    trigger = factory.create_trigger(
        ResourceIdentifier(FUNCTION), lambda *args, **kwargs: calls.append(args), excludes.get(FUNCTION, [])
    )
    handler = trigger.get_path_handlers()[0].event_handler
    base = Path(template).parent.resolve()
    cases = [
        (DirCreatedEvent(str(base / "target")), False),
        (FileModifiedEvent(str(base / "target/release/deps/docker_pulls-0123.o")), False),
        (FileModifiedEvent(str(base / "target/lambda/docker-pulls/bootstrap")), False),
        (FileModifiedEvent(str(base / "target/x86_64-unknown-linux-gnu/release/docker-pulls")), False),
        (FileModifiedEvent(str(base / "moto.log")), False),
        (FileModifiedEvent(str(base / ".venv/lib/python3.11/site-packages/x.py")), False),
        (FileModifiedEvent(str(base / ".git/index")), False),
        (FileModifiedEvent(str(base / ".aws-sam/build/template.yaml")), False),
        (FileModifiedEvent(str(base / "src/main.rs")), True),
        (FileModifiedEvent(str(base / "src/target.rs")), True),
        (FileModifiedEvent(str(base / "Cargo.toml")), True),
        (FileModifiedEvent(str(base / "CargoLambda.toml")), True),
    ]
    for event, triggers in cases:
        calls.clear()
        handler.dispatch(event)
        if bool(calls) != triggers:
            what = "retriggers" if calls else "does not trigger"
            raise CheckFailed(f"sam sync --watch: a change to {os.path.relpath(event.src_path, base)} {what} a sync")
    print(f"  sam sync --watch: {len(cases)} paths, target/, logs, .venv and .git ignored, the sources watched")


# --- sam deploy --guided, run by SAM CLI's own code on a copy ---------------


class StopBeforeUpload(Exception):
    pass


def guided_deploy(directory, answers):
    """`sam deploy --guided` in `directory`, up to the point where it has saved
    samconfig.toml: SAM CLI's own command, prompts answered from `answers`
    (by prompt label; Enter elsewhere), no AWS call."""
    from click.testing import CliRunner
    from samcli.cli.main import cli

    def label(text):
        return re.sub(r"\x1b\[[0-9;]*m", "", text).strip()

    def prompt(text, default=None, **kwargs):
        return answers.get(label(text), default)

    def confirm(text, default=False, **kwargs):
        return answers.get(label(text), default)

    patches = [
        mock.patch("samcli.commands.deploy.guided_context.prompt", prompt),
        mock.patch("samcli.commands.deploy.guided_context.confirm", confirm),
        mock.patch("samcli.commands.deploy.guided_context.manage_stack", lambda **kwargs: "managed-bucket-example"),
        mock.patch("samcli.commands.deploy.guided_context.print_managed_s3_bucket_info", lambda *args: None),
        mock.patch("samcli.commands.deploy.guided_context.CompanionStackManager", mock.MagicMock()),
        mock.patch("samcli.commands.package.package_context.PackageContext", side_effect=StopBeforeUpload),
    ]
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        with contextlib.ExitStack() as stack:
            for patch in patches:
                stack.enter_context(patch)
            result = CliRunner().invoke(cli, ["deploy", "--guided"], catch_exceptions=True)
    finally:
        os.chdir(cwd)
    # SAM CLI reports the exception that stopped it and exits 1.
    stopped = isinstance(result.exception, StopBeforeUpload) or StopBeforeUpload.__name__ in result.output
    if not stopped or "Saved arguments to config file" not in result.output:
        raise CheckFailed(f"sam deploy --guided did not save samconfig.toml and stop: {result.exception!r}\n{result.output}")


def copy_project(directory, template_text=None):
    shutil.copy(ROOT / "samconfig.toml", directory / "samconfig.toml")
    (directory / "template.yaml").write_text(template_text or (ROOT / "template.yaml").read_text())
    return directory / "template.yaml"


def check_config():
    template = ROOT / "template.yaml"
    print("samconfig.toml as committed:")
    configs = agreement(ROOT, template)
    check_sync(ROOT, template, configs)

    scenarios = {
        "every default accepted": {"Save arguments to configuration file": True},
        "other answers": {
            "Stack Name": "pulls-eu",
            "AWS Region": "eu-west-1",
            "Parameter LogLevel": "DEBUG",
            "Parameter ScheduleExpression": "rate(10 minutes)",
            "Parameter ArchiveRetentionDays": "365",
            "Parameter AlarmEmail": "ops@example.com",
            "Confirm changes before deploy": False,
            "Save arguments to configuration file": True,
        },
    }
    for name, answers in scenarios.items():
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            copied = copy_project(directory)
            guided_deploy(directory, answers)
            saved = read_config(directory, "deploy")
            print(f"after sam deploy --guided ({name}): [default.deploy.parameters] has "
                  f"stack_name={saved.get('stack_name')!r} region={saved.get('region')!r}, "
                  f"parameter_overrides {'written' if saved.get('parameter_overrides') else 'absent'}")
            configs = agreement(directory, copied)
            check_sync(directory, copied, configs)
            deployed = parameter_overrides(configs["deploy"])
            for key, value in answers.items():
                wanted = {"Stack Name": "stack_name", "AWS Region": "region"}.get(key)
                if wanted and configs["deploy"].get(wanted) != value:
                    raise CheckFailed(f"sam deploy does not read the guided {key} {value!r}")
                if key.startswith("Parameter ") and deployed.get(key.split(" ", 1)[1]) != value:
                    raise CheckFailed(f"sam deploy does not read the guided {key} {value!r}")

            # The docs change a parameter with scripts/set-parameter: what a
            # later plain `sam deploy` reads must have it, and keep the
            # guided answers.
            subprocess.run([sys.executable, str(ROOT / "scripts" / "set-parameter"),
                            "ScheduleState=DISABLED", "OpenSearchDomainArn=arn:aws:es:us-east-1:123456789012:domain/d"],
                           cwd=directory, check=True, capture_output=True)
            later = parameter_overrides(read_config(directory, "deploy"))
            for key, value in {**{k.split(" ", 1)[1]: v for k, v in answers.items() if k.startswith("Parameter ")},
                               "ScheduleState": "DISABLED",
                               "OpenSearchDomainArn": "arn:aws:es:us-east-1:123456789012:domain/d"}.items():
                if later.get(key) != value:
                    raise CheckFailed(f"after scripts/set-parameter, sam deploy reads {key}={later.get(key)!r}, not {value!r}")
            print(f"  scripts/set-parameter: a later plain sam deploy reads ScheduleState=DISABLED and "
                  f"{len(later) - 2} guided answers kept")

    # The mistake this check exists for: an architecture parameter that the
    # build section sets one way and the global section (deploy, sync) the
    # other. It must fail.
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        text = (ROOT / "template.yaml").read_text()
        text = text.replace("\nParameters:\n", "\nParameters:\n  Architecture:\n    Type: String\n    Default: arm64\n", 1)
        text, count = re.subn(r"(\n\s+Architectures:\n\s+- )(arm64|x86_64)\n", r"\1!Ref Architecture\n", text)
        assert count == 1, "the fixture needs the template's one Architectures line"
        copied = copy_project(directory, text)
        (directory / "samconfig.toml").write_text(
            'version = 0.1\n[default.global.parameters]\nstack_name = "docker-pulls"\n'
            'parameter_overrides = "Architecture=\\"x86_64\\""\n'
            '[default.build.parameters]\nparameter_overrides = "Architecture=\\"arm64\\""\n'
        )
        print("fixture: Architecture arm64 for sam build, x86_64 in the global section:")
        try:
            agreement(directory, copied)
        except CheckFailed as failure:
            print(f"  caught, as it must be: {str(failure)[:100]}…")
        else:
            raise CheckFailed("the samconfig check missed an arm64 build deployed as x86_64")


# --- parameter patterns ------------------------------------------------------

PATTERN_CASES = {
    "OpenSearchDomainArn": {
        "": True,
        "arn:aws:es:eu-west-1:123456789012:domain/pulls": True,
        "arn:aws-cn:es:cn-north-1:123456789012:domain/docker-pulls-01": True,
        "arn:aws-us-gov:es:us-gov-west-1:123456789012:domain/abc": True,
        "arn:aws:es:eu-west-1:123456789012:domain/pulls/*": False,
        "arn:aws:es:eu-west-1:123456789012:domain/*": False,
        "arn:aws:aoss:eu-west-1:123456789012:collection/abc123": False,
        "https://search-pulls.eu-west-1.es.amazonaws.com": False,
        "*": False,
    },
    "OpenSearchCollectionArn": {
        "": True,
        "arn:aws:aoss:eu-west-1:123456789012:collection/a1b2c3d4e5f6g7h8i9j0": True,
        "arn:aws-cn:aoss:cn-north-1:123456789012:collection/abc123": True,
        "arn:aws:aoss:eu-west-1:123456789012:collection/*": False,
        "arn:aws:es:eu-west-1:123456789012:domain/pulls": False,
        "*": False,
    },
}


def check_parameters():
    """The AllowedPattern of the ARN parameters, tried on ARNs (CloudFormation
    matches the whole value; these patterns are anchored)."""
    from samcli.yamlhelper import yaml_parse

    parameters = yaml_parse((ROOT / "template.yaml").read_text())["Parameters"]
    for name, cases in PATTERN_CASES.items():
        pattern = re.compile(parameters[name]["AllowedPattern"])
        for value, allowed in cases.items():
            if bool(pattern.fullmatch(value)) != allowed:
                raise CheckFailed(f"{name}: AllowedPattern {'refuses' if allowed else 'accepts'} {value!r}")
        print(f"{name}: {len(cases)} values accepted or refused as they should be")


# --- the architecture and the built binary ----------------------------------


def template_architecture(template=ROOT / "template.yaml"):
    architectures = built_function(template, {})["architectures"]
    if not architectures or len(architectures) != 1 or architectures[0] not in ELF_MACHINES:
        raise CheckFailed(f"{template}: expected one architecture, arm64 or x86_64, not {architectures}")
    return architectures[0]


def switch(source, destination, architecture):
    text, count = re.subn(
        r"(\n\s+Architectures:\n\s+- )(arm64|x86_64)\n", rf"\g<1>{architecture}\n", Path(source).read_text()
    )
    if count != 1:
        raise CheckFailed(f"{source}: not exactly one `Architectures:` line to switch")
    Path(destination).parent.mkdir(parents=True, exist_ok=True)
    Path(destination).write_text(text)
    if template_architecture(destination) != architecture:
        raise CheckFailed(f"{destination}: the switch did not take")


def elf_architecture(path):
    with open(path, "rb") as file:
        header = file.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    elf_class, data = header[4], header[5]
    if elf_class != 2 or data != 1:
        return None
    (machine,) = struct.unpack_from("<H", header, 18)
    return {number: name for name, number in ELF_MACHINES.items()}.get(machine, f"machine {machine}")


def check_elf(path, architecture):
    # Fixtures first: the check must tell the two apart.
    for name in ELF_MACHINES:
        fake = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack("<HH", 2, ELF_MACHINES[name])
        with tempfile.NamedTemporaryFile() as file:
            file.write(fake)
            file.flush()
            assert elf_architecture(file.name) == name
    found = elf_architecture(path)
    if found != architecture:
        raise CheckFailed(f"{path} is {found or 'not a 64-bit little-endian ELF file'}, but the template says {architecture}")
    print(f"{path}: ELF {found}, as the template says")


def main(arguments):
    try:
        match arguments:
            case ["builders"]:
                check_builders()
            case ["config"]:
                check_config()
            case ["parameters"]:
                check_parameters()
            case ["architecture"]:
                print(template_architecture())
            case ["switch", source, destination, architecture]:
                switch(source, destination, architecture)
            case ["elf", path, architecture]:
                check_elf(path, architecture)
            case _:
                print(__doc__, file=sys.stderr)
                return 2
    except CheckFailed as failure:
        print(f"check-sam: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
