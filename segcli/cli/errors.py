"""One table from exception to message and exit code, for every command.

Subclasses come first: the first match wins. Tracebacks are shown only with
``--debug``; every message says what to do next.
"""

from __future__ import annotations

from segcli.errors import (
    AuthError,
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

ERROR_TABLE: tuple[tuple[type[BaseException], ExitCode, str], ...] = (
    (AuthError, ExitCode.AUTH, "authentication failed"),
    (NotFoundError, ExitCode.AUTH, "not found"),
    (NucleusError, ExitCode.AUTH, "the server refused the run"),
    (JournalBusyError, ExitCode.BUSY, "journal busy"),
    (JournalError, ExitCode.USAGE, "cannot use the journal"),
    (ManifestError, ExitCode.USAGE, "cannot read the manifest"),
    (UsageError, ExitCode.USAGE, "usage error"),
    (ServerUnavailableError, ExitCode.ITEMS_FAILED, "server unavailable"),
    (SegcliError, ExitCode.ITEMS_FAILED, "error"),
)


def classify(exc: BaseException) -> tuple[ExitCode, str]:
    for kind, code, title in ERROR_TABLE:
        if isinstance(exc, kind):
            return code, title
    return ExitCode.ITEMS_FAILED, "unexpected error"
