"""Process exit codes, one table for every command."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0  # every item valid / uploaded, ignored-with-intent or skipped
    ITEMS_FAILED = 1  # some items invalid, rejected or failed
    USAGE = 2  # bad flags, unreadable manifest
    AUTH = 3  # authentication, permission, unknown dataset or model; nothing sent
    BUSY = 4  # another run holds the journal (cron overlap)
    INTERRUPTED = 130  # Ctrl-C / SIGTERM
