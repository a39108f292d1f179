"""Small pieces every command shares: storage options and the report file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from segcli.errors import UsageError


def storage_options(
    s3_endpoint_url: str | None, gcs_endpoint_url: str | None
) -> dict[str, dict[str, Any]] | None:
    options: dict[str, dict[str, Any]] = {}
    if s3_endpoint_url:
        options["s3"] = {"endpoint_url": s3_endpoint_url}
    if gcs_endpoint_url:
        options["gs"] = {"endpoint_url": gcs_endpoint_url}
        if not os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
            # A custom endpoint is an emulator or a proxy; without a credentials
            # file, gcsfs would otherwise probe the cloud metadata server.
            options["gs"]["token"] = "anon"
    return options or None


class ReportWriter:
    """One JSON object per line, flushed per line so a killed run keeps what it wrote."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def __enter__(self) -> ReportWriter:
        if self.path is not None:
            try:
                self._fh = self.path.open("w", encoding="utf-8")
            except OSError as exc:
                raise UsageError(
                    f"cannot write the report {self.path}: {exc.strerror}; choose another --report"
                ) from exc
        return self

    @property
    def active(self) -> bool:
        """Whether records are written (a report was asked for)."""
        return self._fh is not None

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._fh.flush()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fh is not None:
            self._fh.close()
