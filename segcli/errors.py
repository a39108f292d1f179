"""Exceptions segcli raises for a whole run (not for one item).

    SegcliError                   base; every message says what to do next
     ├── UsageError               bad flags or settings           exit 2
     ├── ManifestError            the manifest cannot be read     exit 2
     ├── ClusterError             the Dask cluster cannot be used exit 2
     ├── JournalBusyError         another run holds the journal   exit 4
     ├── JournalError             the journal file cannot be used
     ├── ServerUnavailableError   no answer, nothing was sent     exit 1
     └── NucleusError             the server refused the run      exit 3
          ├── AuthError           401 / 403, missing key
          └── NotFoundError       unknown dataset, model or run

Problems with single items are never exceptions: they are ``Problem``s and
the other items go on.
"""

from __future__ import annotations

import os
from typing import IO


class SegcliError(Exception):
    """Base of every error segcli raises on purpose.

    ``message`` says what is wrong; ``hint``, when given, what to do about it
    (shown on its own line, and as ``hint`` in ``--json`` output).
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        # Whole for library callers; the CLI prints message and hint apart.
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(SegcliError):
    pass


class ManifestError(SegcliError):
    pass


class ClusterError(SegcliError):
    """The Dask cluster (``--scheduler``) cannot be used: Dask missing, unreachable, lost."""


class JournalBusyError(SegcliError):
    pass


class JournalError(SegcliError):
    """The journal is not a segcli journal, is damaged, or cannot be opened."""


class ServerUnavailableError(SegcliError):
    """The server could not be reached (or kept failing) before any item was sent."""


class NucleusError(SegcliError):
    pass


class AuthError(NucleusError):
    pass


class NotFoundError(NucleusError):
    pass


def open_for_writing(path: os.PathLike[str], what: str, option: str) -> IO[str]:
    """``path`` opened for text, or the ``UsageError`` that names it (``what``) and the
    ``option`` that chose it: an output that cannot be written stops a run before it starts."""
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot write {what} {os.fspath(path)}: {exc.strerror}; choose another {option}"
        ) from exc
