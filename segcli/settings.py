"""What an upload is told to do: the settings, the credentials, the shard.

The CLI builds these from flags; a library caller builds them directly.
``Credentials.check`` is the one place that decides whether the key can be
used; the HTTP client asks it too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segcli.codes import CodePolicy
from segcli.defaults import DEFAULT_ENDPOINT, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_PIXELS
from segcli.errors import UsageError
from segcli.pool import PoolKind, default_workers
from segcli.target import Target


@dataclass(frozen=True, slots=True)
class Credentials:
    """The API key never shows in a repr, a log or a report."""

    api_key: str | None = field(default=None, repr=False)
    limited_access_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Credentials:
        env = os.environ if env is None else env
        creds = cls(
            api_key=env.get("NUCLEUS_API_KEY") or None,
            limited_access_key=env.get("NUCLEUS_LIMITED_ACCESS_KEY") or None,
        )
        creds.check()
        return creds

    def check(self) -> None:
        if self.api_key is not None and self.limited_access_key is not None:
            raise UsageError(
                "both NUCLEUS_API_KEY and NUCLEUS_LIMITED_ACCESS_KEY are set",
                hint="give exactly one of them: unset the other",
            )
        key = self.api_key if self.api_key is not None else self.limited_access_key
        if key is None:
            raise UsageError(
                "no API key",
                hint="set NUCLEUS_API_KEY (or NUCLEUS_LIMITED_ACCESS_KEY) in the environment; "
                "a dry run checks the key too",
            )
        if not key:
            raise UsageError("the API key is empty", hint="set NUCLEUS_API_KEY to your key")

    @property
    def key(self) -> str:
        """The one key to send (after ``check``)."""
        self.check()
        return self.api_key if self.api_key is not None else str(self.limited_access_key)

    @property
    def variable(self) -> str:
        """The environment variable the key comes from, for messages."""
        return "NUCLEUS_API_KEY" if self.api_key is not None else "NUCLEUS_LIMITED_ACCESS_KEY"

    def secrets(self) -> tuple[str, ...]:
        return tuple(k for k in (self.api_key, self.limited_access_key) if k)


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadSettings:
    target: Target
    endpoint: str = DEFAULT_ENDPOINT
    update: bool = False
    dry_run: bool = False
    force: bool = False
    #: requests in flight, fixed; None (the default) lets the limiter find it
    concurrency: int | None = None
    #: the most requests the adaptive limit may allow in flight
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    remote_batch: int = 20
    local_batch: int = 10
    retries: int = 6
    timeout_s: float = 60.0
    validate: bool = True
    validate_remote: bool = True
    shard: tuple[int, int] | None = None  # (k, n): keep items whose id hashes to k of n
    journal_path: Path | str | None = None
    workers: int = field(default_factory=default_workers)
    pool: PoolKind = "process"
    max_pixels: int = DEFAULT_MAX_PIXELS
    storage_options: Mapping[str, Mapping[str, Any]] | None = None
    trained_slice_id: str | None = None
    #: an empty manifest is an error (usually a broken step upstream) unless allowed
    allow_empty: bool = False
    policy: CodePolicy = field(default_factory=CodePolicy)  # --ignore / --error
    #: a Dask scheduler's address, or "local": masks are read and inspected on its
    #: workers (``segcli.workers``); the sending and the journal stay here
    scheduler: str | None = None
    #: send remote masks as async jobs (NDJSON to a signed URL), not 20 a request
    asynchronous: bool = False
    #: items per async job, at most MAX_JOB_ITEMS (jobs.py)
    job_size: int = 10_000
    #: async jobs being started or running at once
    max_jobs: int = 4
    #: the longest wait between two polls of a job's status, in seconds
    job_poll_s: float = 5.0
    #: copy local masks to this s3:// or gs:// prefix and upload their URLs
    stage: str | None = None


def shard_of(reference_id: str, n: int) -> int:
    """Stable across runs, machines and Python versions (unlike hash())."""
    digest = hashlib.sha256(reference_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise UsageError(f"--shard {text!r}: write K/N, e.g. 0/4 (K counts from 0)") from None
    if n < 1 or not 0 <= k < n:
        raise UsageError(f"--shard {text!r}: K must be in 0..N-1 and N at least 1")
    return k, n
