"""The ``segcli`` app: its root options, the command wrapper, the commands.

``segcli/cli/`` is the only package that imports typer. Command modules import the
heavy parts of segcli inside their functions, so ``segcli --help`` and
``segcli --version`` start fast. For the same reason the command modules
do without ``from __future__ import annotations``: Typer reads every
command's signature at each start, and real annotation objects spare it
from eval-ing some 300 annotation strings (a quarter of its set-up time).
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from segcli import __version__

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 some items invalid, rejected or failed; "
    "2 usage or manifest error; 3 authentication, permission or unknown dataset/model "
    "(nothing sent); 4 another run holds the journal; 130 interrupted."
)


def _group_class() -> type:
    from segcli.cli.base import SegcliGroup

    return SegcliGroup


app = typer.Typer(
    name="segcli",
    cls=_group_class(),
    help="Check segmentation masks and bulk-upload them to Nucleus.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": False}

F = TypeVar("F", bound=Callable[..., Any])


def _version(value: bool) -> None:
    if value:
        typer.echo(f"segcli {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show tracebacks for errors.", envvar="SEGCLI_DEBUG"),
    ] = False,
) -> None:
    _state["debug"] = debug


def command(fn: F) -> F:
    """Run a command body, turning its result and exceptions into exit codes."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from segcli.cli.errors import INTERRUPTED, describe

        json_output = bool(kwargs.get("json_output"))
        try:
            code = fn(*args, **kwargs)
        except KeyboardInterrupt:
            _fail(INTERRUPTED, "interrupted", INTERRUPTED.hint, json_output, own_hint=False)
        except typer.Exit:
            raise
        except Exception as exc:
            if _state["debug"]:
                # The traceback, then the usual message and exit code: scripts
                # that check the code must not see it change under --debug.
                traceback.print_exc()
            kind, message, hint = describe(exc)
            own = getattr(exc, "hint", None) is not None
            _fail(kind, message, hint, json_output, own_hint=own)
        raise typer.Exit(int(code or 0))

    return wrapper  # type: ignore[return-value]


def _fail(kind: Any, message: str, hint: str, json_output: bool, *, own_hint: bool) -> NoReturn:
    """Say what stopped the command (stderr; stdout too with --json) and exit with its code."""
    from segcli.cli.errors import UNEXPECTED, error_record

    if kind is UNEXPECTED:
        # A bug in segcli, not in the input: say so and how to get details.
        advice = (
            "Please report it."
            if _state["debug"]
            else "Re-run with --debug for a traceback and please report it."
        )
        sys.stderr.write(f"segcli: unexpected error: {message}\n{advice}\n")
    elif kind.code == "interrupted":
        sys.stderr.write("interrupted\n")
    else:
        sys.stderr.write(f"segcli: {kind.title}: {message}\n")
        if own_hint:
            sys.stderr.write(f"  {hint}\n")
    if json_output:
        _print_json(error_record(kind, message, hint))
    raise typer.Exit(kind.exit_code)


def _print_json(record: dict[str, Any]) -> None:
    import json

    sys.stdout.write(json.dumps(record, indent=2) + "\n")
    sys.stdout.flush()


def _register() -> None:
    from segcli.cli import convert_folder_cmd  # noqa: F401 - registers palette, colour, wide
    from segcli.cli.base import ConvertCommand, ManifestCommand, SegcliCommand, ServeCommand
    from segcli.cli.convert_cmd import convert_app
    from segcli.cli.manifest_cmd import manifest_command
    from segcli.cli.preview_cmd import preview_command
    from segcli.cli.serve_cmd import serve_command
    from segcli.cli.stats_cmd import stats_command
    from segcli.cli.status_cmd import status_command
    from segcli.cli.upload_cmd import upload_command
    from segcli.cli.validate_cmd import validate_command
    from segcli.cli.verify_cmd import verify_command

    app.command("validate", cls=SegcliCommand)(command(validate_command))
    app.command("upload", cls=SegcliCommand)(command(upload_command))
    app.command("status", cls=SegcliCommand)(command(status_command))
    app.command("verify", cls=SegcliCommand)(command(verify_command))
    app.command("serve", cls=ServeCommand)(command(serve_command))
    app.command("manifest", cls=ManifestCommand)(command(manifest_command))
    app.command("preview", cls=SegcliCommand)(command(preview_command))
    app.command("stats", cls=SegcliCommand)(command(stats_command))
    for info in convert_app.registered_commands:
        assert info.callback is not None
        info.callback = command(info.callback)
        info.cls = ConvertCommand
    app.add_typer(convert_app)


_register()


def main() -> None:
    app()
