"""The command class every segcli command uses: env vars and plain help.

Every option can be set from an environment variable (rclone's convention,
so cron jobs and job arrays configure segcli without long command lines).
An option that names none gets ``<prefix><OPTION>``: ``--dry-run`` reads
``SEGCLI_DRY_RUN``, ``segcli serve --port`` reads ``SEGCLI_SERVE_PORT``.
Deriving the names here, rather than writing them on each option, is what
keeps ``--help`` and README from promising a variable that does not work.

Help is plain text: ``MANIFEST`` in the usage line (required) or
``[MANIFEST]`` (optional), and a metavar for every option that takes a
value, instead of Typer's ``{MANIFEST}`` and ``<list[str]>``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from typer.core import TyperCommand, TyperGroup

#: options that only print and exit; an env var for them would make no sense
NO_ENVVAR = frozenset({"help", "version"})


class SegcliCommand(TyperCommand):
    env_prefix = "SEGCLI_"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.param_type_name != "option" or param.name in NO_ENVVAR:
                continue
            if param.envvar is None:
                param.envvar = self.env_prefix + str(param.name).upper()
            param.show_envvar = True  # type: ignore[attr-defined]
            if param.metavar is None and not getattr(param, "is_flag", False):
                param.metavar = _metavar(param)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        words = list(args)  # the parser consumes the list it is given
        try:
            return super().parse_args(ctx, args)
        except Exception as exc:
            usage_error_json(exc, words)
            raise

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments = []
        options = []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                if not param.hidden:  # type: ignore[attr-defined]
                    arguments.append((_argument_name(param), getattr(param, "help", "") or ""))
            else:
                record = param.get_help_record(ctx)
                if record is not None:
                    options.append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if options:
            with formatter.section("Options"):
                formatter.write_dl(options)


def _argument_name(param: Any) -> str:
    return str(param.metavar or param.name).upper()


def _metavar(param: Any) -> str:
    """A plain placeholder by type: ``N``, ``NUMBER``, ``FILE``, ``DIR``, ``PATH``, ``TEXT``."""
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    if getattr(descriptor, "is_list", False):
        annotation = getattr(annotation, "__args__", (str,))[0]
    if annotation is int:
        return "N"
    if annotation is float:
        return "NUMBER"
    if getattr(descriptor, "is_path", False) or getattr(descriptor, "is_file", False):
        info = descriptor.parameter_info  # type: ignore[union-attr]
        if not getattr(info, "dir_okay", True):
            return "FILE"
        if not getattr(info, "file_okay", True):
            return "DIR"
        return "PATH"
    return "TEXT"


class SegcliGroup(TyperGroup):
    """The ``segcli`` group: an unknown command says so in JSON too, when asked."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        words = list(args)
        try:
            return super().resolve_command(ctx, args)
        except Exception as exc:
            usage_error_json(exc, words)
            raise


def wants_json(args: list[str]) -> bool:
    """Whether these words (or SEGCLI_JSON) ask for JSON; read before they are parsed."""
    words = args[: args.index("--")] if "--" in args else args
    if "--json" in words:
        return True
    return os.environ.get("SEGCLI_JSON", "").strip().lower() in ("1", "true", "yes", "on")


def usage_error_json(exc: BaseException, args: list[str]) -> None:
    """Typer's own usage errors (a missing option, a bad number) as the one JSON object
    ``--json`` promises on stdout; Typer still says them on stderr as usual."""
    from segcli.cli.errors import USAGE_FROM_PARSER, error_record

    exit_code = getattr(exc, "exit_code", None)
    format_message = getattr(exc, "format_message", None)
    if not exit_code or not callable(format_message) or not wants_json(args):
        return
    record = error_record(USAGE_FROM_PARSER, format_message(), USAGE_FROM_PARSER.hint)
    sys.stdout.write(json.dumps(record, indent=2) + "\n")
    sys.stdout.flush()


class ServeCommand(SegcliCommand):
    """``segcli serve``: its own prefix, since its --dataset is a name, not an id."""

    env_prefix = "SEGCLI_SERVE_"


class ConvertCommand(SegcliCommand):
    """``segcli convert ...``: its own prefix, since its --format and -o write a manifest."""

    env_prefix = "SEGCLI_CONVERT_"


class ManifestCommand(SegcliCommand):
    """``segcli manifest``: its own prefix, since its -o names the manifest it writes."""

    env_prefix = "SEGCLI_MANIFEST_"
