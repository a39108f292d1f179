"""One table from exception to message and exit code, for every command.

Subclasses come first: the first match wins. Tracebacks are shown only with
``--debug``; every message says what to do next. ``code`` is the stable
name scripts see in ``--json`` output (``{"error": {"code", "message",
"hint"}, "exit_code"}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from segcli.errors import (
    AuthError,
    ClusterError,
    JournalBusyError,
    JournalError,
    ManifestError,
    NotFoundError,
    NucleusError,
    SegcliError,
    ServerUnavailableError,
    UsageError,
)
from segcli.exitcodes import ExitCode


@dataclass(frozen=True, slots=True)
class Kind:
    exit_code: ExitCode
    title: str  # the words after "segcli: "
    code: str  # for scripts
    hint: str  # when the error names no fix of its own


ERROR_TABLE: tuple[tuple[type[BaseException], Kind], ...] = (
    (
        AuthError,
        Kind(
            ExitCode.AUTH,
            "authentication failed",
            "auth",
            "check NUCLEUS_API_KEY (or NUCLEUS_LIMITED_ACCESS_KEY) and its access to the dataset",
        ),
    ),
    (
        NotFoundError,
        Kind(ExitCode.AUTH, "not found", "not-found", "check the dataset, model or model run id"),
    ),
    (
        NucleusError,
        Kind(ExitCode.AUTH, "the server refused the run", "refused", "read the server's message"),
    ),
    (
        JournalBusyError,
        Kind(
            ExitCode.BUSY,
            "journal busy",
            "journal-busy",
            "wait for the other run to finish, or give this one --journal PATH",
        ),
    ),
    (
        JournalError,
        Kind(
            ExitCode.USAGE, "cannot use the journal", "journal", "pass --journal with another path"
        ),
    ),
    (
        ManifestError,
        Kind(
            ExitCode.USAGE,
            "cannot read the manifest",
            "manifest",
            "fix the manifest where the message says and run again",
        ),
    ),
    (
        ClusterError,
        Kind(
            ExitCode.USAGE,
            "cannot use the Dask cluster",
            "cluster",
            "check --scheduler (or DASK_SCHEDULER_ADDRESS), or leave it out to use this machine",
        ),
    ),
    (UsageError, Kind(ExitCode.USAGE, "usage error", "usage", "see --help")),
    (
        ServerUnavailableError,
        Kind(
            ExitCode.ITEMS_FAILED,
            "server unavailable",
            "server-unavailable",
            "re-run the same command when the server answers",
        ),
    ),
    (SegcliError, Kind(ExitCode.ITEMS_FAILED, "error", "error", "read the message above")),
)

UNEXPECTED = Kind(
    ExitCode.ITEMS_FAILED,
    "unexpected error",
    "internal",
    "re-run with --debug for a traceback and please report it",
)
USAGE_FROM_PARSER = Kind(ExitCode.USAGE, "usage error", "usage", "see --help")
INTERRUPTED = Kind(
    ExitCode.INTERRUPTED, "interrupted", "interrupted", "re-run the same command to go on"
)


def classify(exc: BaseException) -> Kind:
    for kind_of, kind in ERROR_TABLE:
        if isinstance(kind_of, type) and isinstance(exc, kind_of):
            return kind
    return UNEXPECTED


def describe(exc: BaseException) -> tuple[Kind, str, str]:
    """(kind, message, hint) of an exception, for the screen and for ``--json``."""
    kind = classify(exc)
    if kind is UNEXPECTED:
        return kind, f"{type(exc).__name__}: {exc}", kind.hint
    message = getattr(exc, "message", None) or str(exc)
    hint = getattr(exc, "hint", None) or kind.hint
    return kind, message, hint


def error_record(kind: Kind, message: str, hint: str) -> dict[str, Any]:
    """The one JSON object a failed command prints with ``--json``."""
    return {
        "error": {"code": kind.code, "message": message, "hint": hint},
        "exit_code": int(kind.exit_code),
    }
