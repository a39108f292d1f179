"""Settings of the local Nucleus server: plain frozen values, no I/O.

Kept apart from the server code so the CLI can build a ``ServerConfig``
without importing aiohttp.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The routes that write data. Faults apply to these unless told otherwise:
#: retries of reads are uninteresting, retries of writes are what a client
#: must get right.
UPLOAD_ROUTES: tuple[str, ...] = ("annotate", "uploadPredictions", "predict", "append")

#: ``FaultConfig(routes=ALL_ROUTES)`` injects faults into every route.
ALL_ROUTES: tuple[str, ...] = ("*",)

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class FaultConfig:
    """What goes wrong on purpose, and how often. Deterministic for a seed.

    Each request to a route in ``routes`` draws from one ``random.Random(seed)``
    in arrival order: first its latency, then at most one fault, picked by the
    rates in this order: 503, 429 (with ``Retry-After: retry_after_s``), 500,
    504, a connection dropped mid-response, a stall of ``stall_s`` seconds that
    ends in a 504, and a lost answer. Those faulted before the handler have
    stored nothing; a lost answer is the one fault that comes after it: the
    write is applied, then the connection is cut before the answer is sent,
    as when a network fails on the way back. ``routes`` names routes by their last fixed word
    (``annotate``, ``uploadPredictions``, ``predict``, ``append``, ``info``...);
    ``("*",)`` means every route.
    """

    seed: int = 0
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    rate_503: float = 0.0
    rate_429: float = 0.0
    retry_after_s: float = 1.0
    rate_500: float = 0.0
    rate_504: float = 0.0
    rate_drop: float = 0.0
    rate_stall: float = 0.0
    stall_s: float = 130.0  # longer than the official client's 120 s timeout
    rate_lost: float = 0.0
    routes: tuple[str, ...] = UPLOAD_ROUTES

    def __post_init__(self) -> None:
        rates = self.rates()
        for name, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rate {name} must be within 0..1, got {rate}")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates add up to more than 1")
        for name in ("latency_s", "latency_jitter_s", "retry_after_s", "stall_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        object.__setattr__(self, "routes", tuple(self.routes))

    def rates(self) -> dict[str, float]:
        """Fault kind -> rate, in the order the draw tests them."""
        return {
            "503": self.rate_503,
            "429": self.rate_429,
            "500": self.rate_500,
            "504": self.rate_504,
            "drop": self.rate_drop,
            "stall": self.rate_stall,
            # Last, so that adding it left the draws of the others as they were.
            "lost": self.rate_lost,
        }

    @property
    def active(self) -> bool:
        return self.latency_s > 0 or self.latency_jitter_s > 0 or any(self.rates().values())

    def covers(self, route: str) -> bool:
        return "*" in self.routes or route in self.routes


@dataclass(frozen=True)
class MaskRules:
    """How an uploaded mask is checked: decoded (pixels) or by its header only; strict."""

    decode: bool = True
    #: refuse a pixel value without a segment (needs ``decode``)
    strict: bool = False


@dataclass(frozen=True)
class ServerConfig:
    """How to run one local server. ``api_keys`` must name at least one key."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    api_keys: tuple[str, ...] = ()
    auto_items: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    faults: FaultConfig = field(default_factory=FaultConfig)
    #: fsspec options by scheme ("s3", "gs"). A remote mask_url of a scheme
    #: named here is fetched and checked like an uploaded mask; any other is
    #: stored as given, unchecked (the server has no way to read it).
    storage_options: Mapping[str, Mapping[str, Any]] | None = None
    #: Refuse masks holding a pixel value that has no segment. The service
    #: accepts them, and so does this server unless told to be strict.
    strict_masks: bool = False
    #: Decode each uploaded mask to check its pixels. Off, only its PNG
    #: structure and header are checked: for benchmarks, where this server
    #: stands in for a remote service whose CPU is not the client's.
    decode_masks: bool = True
    #: At most this many requests in flight; above it, 429 with
    #: ``Retry-After: faults.retry_after_s`` (a service's capacity).
    max_inflight: int | None = None
    #: Each step of an async job (``jobs.STEP_LINES`` objects) takes at least this
    #: long: jobs that are still running while a test does something to its client.
    job_step_s: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "api_keys", tuple(self.api_keys))
        if self.max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be positive")
        if self.job_step_s < 0:
            raise ValueError("job_step_s must not be negative")
        if self.max_inflight is not None and self.max_inflight < 1:
            raise ValueError("max_inflight must be 1 or more")
        if self.strict_masks and not self.decode_masks:
            raise ValueError("strict_masks needs decode_masks: pixel values come from decoding")

    @property
    def mask_rules(self) -> MaskRules:
        return MaskRules(decode=self.decode_masks, strict=self.strict_masks)

    def check(self) -> None:
        """Refuse settings a server cannot start with."""
        if not self.api_keys or not all(self.api_keys):
            raise ValueError("the server needs at least one non-empty API key")
