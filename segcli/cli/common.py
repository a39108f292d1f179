"""Small pieces every command shares: storage options and the report file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from segcli.errors import open_for_writing


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


# The youngest generation's threshold for a run (Python's default: 700).
GC_GEN0_THRESHOLD = 20_000


def quiet_collector() -> None:
    """Make the garbage collector cheap for the rest of this process: a CLI run's call.

    Everything imported so far (typer, rich, aiohttp: ~10^5 objects) is
    frozen out of the collector's scans, and the youngest generation is
    collected less often. A run allocates a few objects per item, almost
    none in cycles; with the defaults, full collections over the imported
    modules held the GIL for tens of ms at a time, stalling the sends.
    """
    import gc

    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


class ReportWriter:
    """One JSON object per line, flushed per line so a killed run keeps what it wrote."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def __enter__(self) -> ReportWriter:
        if self.path is not None:
            self._fh = open_for_writing(self.path, "the report", "--report")
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


class NoPage:
    """What a command holds when no ``--html`` was asked for: every call does nothing."""

    def __enter__(self) -> NoPage:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add(self, *args: Any, **kwargs: Any) -> None:
        return None

    def finish(self, *args: Any, **kwargs: Any) -> None:
        return None


def html_page(
    path: Path | None, title: str, *, limit: int, report: Path | None, settings: Any = None
) -> Any:
    """The ``--html`` page of a run (``segcli.report.html.HtmlReport``), or a ``NoPage``.

    ``settings`` (a run's: validate's, upload's, convert's) says how to read and
    decode the masks of its cards, as the run did.
    """
    if path is None:
        return NoPage()
    from segcli.report.html import HtmlReport

    kwargs = {}
    if settings is not None:
        kwargs = {
            "workers": settings.workers,
            "max_pixels": settings.max_pixels,
            "storage_options": settings.storage_options,
        }
    return HtmlReport(path, title=title, limit=limit, report_path=report, **kwargs)
