"""``--stage s3://bucket/prefix`` (or ``gs://``): local masks copied to a bucket, sent by URL.

A local mask that passed its checks is copied to the bucket through fsspec
(s3fs, gcsfs), unless the object there already holds the same bytes, and
goes on as a remote mask: 20 a JSON request, or into an async job.

Its key is ``PREFIX/<reference_id, made safe>-<16 hex of sha256(absolute mask path)>.png``:
the same mask of the same item always gets the same key; only letters,
digits, ``.``, ``_`` and ``-`` appear in it (no ``/``, no ``..`` segment, no
percent sign a fetcher could decode); and two items share a key only when
they share the mask file, which then holds the same bytes for both (the
ground truth and the predictions of an item are different files, hence
different keys).

"Already there" means the object's size and its ``segcli-sha256`` metadata
match the mask: a sha256 of the bytes that segcli writes beside each copy.
Not the ETag or the MD5 the stores keep themselves: an S3 ETag is the MD5 of
the bytes only for a single-part upload without KMS encryption, a GCS
``md5Hash`` is absent for composite objects, and a crc32c is a checksum, not
a digest a re-run can trust. An object without segcli's digest (written by
another tool) is copied once more, and has it from then on.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from segcli.batching import Entry
from segcli.errors import UsageError
from segcli.model import ItemState, MaskItem
from segcli.prepare import Prepared, Settled
from segcli.records import PlanHook, PlannedRequest, StageCounts

STAGE_SCHEMES = ("s3", "gs")
DIGEST_KEY = "segcli-sha256"
COPIES_AT_ONCE = 16  # objects being checked or written at once
SLUG_MAX_CHARS = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class StagePrefix:
    scheme: str  # "s3" or "gs"
    bucket: str
    prefix: str  # no leading or trailing "/"; may be empty

    @classmethod
    def parse(cls, text: str) -> StagePrefix:
        scheme, sep, rest = text.strip().partition("://")
        scheme = scheme.lower()
        if scheme == "gcs":
            scheme = "gs"
        bucket, _, prefix = rest.partition("/")
        if not sep or scheme not in STAGE_SCHEMES or not bucket or "?" in rest:
            raise UsageError(
                f"--stage {text!r}: give a bucket and a prefix, s3://BUCKET/PREFIX or "
                "gs://BUCKET/PREFIX",
                hint="Nucleus fetches staged masks from there itself, so it must be a bucket "
                "the service can read",
            )
        return cls(scheme, bucket, prefix.strip("/"))

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")

    def key_for(self, item: MaskItem) -> str:
        """The object key of an item's local mask (see the module's docstring)."""
        path = item.mask[len("file://") :] if item.mask.startswith("file://") else item.mask
        where = hashlib.sha256(os.path.abspath(path).encode("utf-8")).hexdigest()[:16]
        slug = _UNSAFE.sub("_", item.reference_id).strip("._-")[:SLUG_MAX_CHARS] or "mask"
        name = f"{slug}-{where}.png"
        return f"{self.prefix}/{name}" if self.prefix else name

    def url_for(self, item: MaskItem) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key_for(item)}"

    def sent_as(self, item: MaskItem) -> MaskItem:
        """The item as it is uploaded: its mask_url the staged copy's."""
        return replace(item, mask=self.url_for(item))


class Stager:
    """Copies the local masks of one run; ``sent_as`` says what each item goes out as."""

    def __init__(
        self,
        prefix: StagePrefix,
        storage_options: Mapping[str, Mapping[str, Any]] | None,
        counts: StageCounts,
        *,
        dry_run: bool = False,
        on_plan: PlanHook | None = None,
    ) -> None:
        from segcli.storage import filesystem_for, storage_options_for

        self.prefix = prefix
        self.counts = counts
        self.dry_run = dry_run
        self.on_plan = on_plan
        options = storage_options_for(prefix.scheme, storage_options)
        self.fs, _ = filesystem_for(str(prefix) + "/", prefix.scheme, options)
        self._room = asyncio.Semaphore(COPIES_AT_ONCE)

    def sent_as(self, item: MaskItem) -> MaskItem:
        return self.prefix.sent_as(item)

    async def check(self) -> None:
        """Before any item: the bucket is there and can be seen with these credentials."""
        try:
            await self._on_fs(self.fs._info(self.prefix.bucket))
        except Exception as exc:
            raise UsageError(
                f"--stage {self.prefix}: cannot reach the bucket {self.prefix.bucket}: "
                f"{_reason(exc)}",
                hint="check the bucket's name and the credentials (the usual AWS or Google "
                "settings; --s3-endpoint-url / --gcs-endpoint-url for another server)",
            ) from None

    async def stage(self, prepared: Sequence[Prepared]) -> list[Prepared]:
        """Each local entry copied (or found in place) and turned remote; the rest as they are."""
        return list(await asyncio.gather(*(self._one(p) for p in prepared)))

    async def _one(self, prepared: Prepared) -> Prepared:
        if not isinstance(prepared, Entry) or prepared.data is None:
            return prepared
        item, data = prepared.item, prepared.data
        staged = self.sent_as(item)
        path = f"{self.prefix.bucket}/{self.prefix.key_for(item)}"
        sha = hashlib.sha256(data).hexdigest()
        async with self._room:
            try:
                if await self._held(path) == (len(data), sha):
                    self.counts.already += 1
                elif self.dry_run:
                    self._plan(staged, item, len(data))
                else:
                    await self._put(path, data, sha)
                    self.counts.copied += 1
                    self.counts.bytes_copied += len(data)
            except Exception as exc:
                message = (
                    f"could not stage the mask to {staged.mask}: {_reason(exc)}; check the "
                    "bucket and its credentials, then re-run"
                )
                return Settled(
                    item, ItemState.FAILED, message, prepared.problems, prepared.fingerprint
                )
        return Entry(staged, prepared.fingerprint, None, prepared.problems)

    def _plan(self, staged: MaskItem, item: MaskItem, size: int) -> None:
        self.counts.copied += 1
        self.counts.bytes_copied += size
        if self.on_plan is not None:
            self.on_plan(PlannedRequest("PUT", staged.mask, "stage", size, (item.reference_id,)))

    async def _held(self, path: str) -> tuple[int, str | None] | None:
        """(size, segcli's digest) of the object there, or None when there is none."""
        try:
            if self.prefix.scheme == "s3":
                bucket, _, key = path.partition("/")
                head = await self._on_fs(self.fs._call_s3("head_object", Bucket=bucket, Key=key))
                meta = head.get("Metadata") or {}
                return int(head["ContentLength"]), meta.get(DIGEST_KEY)
            info = await self._on_fs(self.fs._info(path))
        except FileNotFoundError:
            return None
        meta = info.get("metadata") or {}
        return int(info["size"]), meta.get(DIGEST_KEY)

    async def _put(self, path: str, data: bytes, sha: str) -> None:
        if self.prefix.scheme == "s3":
            write = self.fs._pipe_file(
                path, data, Metadata={DIGEST_KEY: sha}, ContentType="image/png"
            )
        else:
            write = self.fs._pipe_file(
                path, data, metadata={DIGEST_KEY: sha}, content_type="image/png"
            )
        await self._on_fs(write)

    async def _on_fs(self, work: Coroutine[Any, Any, Any]) -> Any:
        # s3fs and gcsfs are asynchronous on fsspec's own event loop thread: the
        # coroutine runs there, this loop waits for it without a thread of its own.
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self.fs.loop))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such bucket"
    if isinstance(exc, PermissionError):
        return "access denied"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
