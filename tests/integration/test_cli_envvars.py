"""Every option of every command reads the environment variable its --help names.

The walk goes over Typer's own parameter list, so an option added tomorrow
is checked too: README and --help cannot promise a variable that does not work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from segcli.cli.root import app
from tests.helpers.upload import KEY, Nucleus, make_local_manifest

ROOT_COMMAND = typer.main.get_command(app)
SKIP = {"help", "version"}  # print and exit: no variable on purpose


def _commands() -> list[tuple[str, Any]]:
    """Every command, groups' subcommands included ("convert coco-panoptic")."""
    found: list[tuple[str, Any]] = [("", ROOT_COMMAND)]
    for name, command in sorted(getattr(ROOT_COMMAND, "commands", {}).items()):
        found.append((name, command))
        for sub, inner in sorted(getattr(command, "commands", {}).items()):
            found.append((f"{name} {sub}", inner))
    return found


def _options() -> list[tuple[str, Any, Any]]:
    found = []
    for name, command in _commands():
        for param in command.params:
            if param.param_type_name == "option" and param.name not in SKIP:
                found.append((name, command, param))
    return found


def _env_value(param: Any) -> tuple[str, Any]:
    """A value for the option's variable, and what the command must receive from it."""
    descriptor = param.type_descriptor
    annotation = descriptor.annotation
    info = descriptor.parameter_info
    default = param.default
    if getattr(param, "is_flag", False) or annotation is bool:
        return ("0", False) if default is True else ("1", True)
    if descriptor.is_list:
        element = getattr(annotation, "__args__", (str,))[0]
        splitter = descriptor.envvar_list_splitter or " "  # paths: os.pathsep, as in PATH
        return splitter.join(["first", "second"]), [element("first"), element("second")]
    low, high = info.min, info.max
    if annotation is int:
        value = (low if low is not None else 0) + 1
        if high is not None and value > high:
            value = high
        if value == default:
            value = value + 1 if high is None or value + 1 <= high else value - 1
        return str(value), value
    if annotation is float:
        value = 0.5 if high is not None and high <= 1 else (low or 0.0) + 1.5
        return str(value), value
    if descriptor.is_path or descriptor.is_file:
        return "from-env.txt", Path("from-env.txt")
    return "from-env", "from-env"


def _names(param: Any) -> list[str]:
    return param.envvar if isinstance(param.envvar, (list, tuple)) else [param.envvar]


@pytest.mark.parametrize(
    ("command", "option"),
    [(name or "segcli", param.name) for name, _, param in _options()],
)
def test_the_variable_an_option_advertises_sets_it(
    command: str, option: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, cmd, param = next(
        (n, c, p) for n, c, p in _options() if (n or "segcli") == command and p.name == option
    )
    assert param.envvar, f"{command} --{option} has no environment variable"
    assert param.show_envvar, f"{command} --{option}: --help does not show its variable"
    help_text = cmd.get_help(cmd.make_context(name or "segcli", ["--help"], resilient_parsing=True))
    for var in _names(param):
        assert var in " ".join(help_text.split()), f"{var} is not in `{command} --help`"

    # Required options of the same command come from their own variables.
    for other in cmd.params:
        if other.param_type_name == "option" and other.required and other is not param:
            monkeypatch.setenv(_names(other)[0], "ds_from_env")
    text, expected = _env_value(param)
    monkeypatch.setenv(_names(param)[0], text)
    args = ["manifest.yaml" for p in cmd.params if p.param_type_name == "argument" and p.required]
    if cmd is ROOT_COMMAND:
        args = ["status"]  # a group needs a subcommand to parse
    ctx = cmd.make_context(name or "segcli", args, resilient_parsing=False)
    got = ctx.params[param.name]
    if isinstance(expected, list):
        got = list(got)
    assert got == expected, f"{_names(param)[0]}={text!r} gave {got!r}"


def test_every_command_is_walked() -> None:
    walked = {name for name, _, _ in _options()}
    assert {"validate", "upload", "status", "verify", "serve"} <= walked


def test_dry_run_from_the_environment_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, refs = make_local_manifest(tmp_path, 3)
    nucleus = Nucleus(tmp_path, refs)
    try:
        monkeypatch.setenv("NUCLEUS_API_KEY", KEY)
        monkeypatch.setenv("NUCLEUS_ENDPOINT", nucleus.url)
        monkeypatch.setenv("SEGCLI_DRY_RUN", "1")
        monkeypatch.setenv("SEGCLI_WORKERS", "1")
        result = CliRunner().invoke(
            app, ["upload", str(manifest), "--dataset", nucleus.dataset_id, "--json"]
        )
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["dry_run"] is True
        assert nucleus.rows() == []
        assert not (tmp_path / "manifest.jsonl.segcli-journal").exists()
    finally:
        nucleus.stop()
