"""Read back what a dataset holds for each manifest item, and say how it differs.

For each item (or a random sample of them), the item's ground truth comes
from ``dataset/{id}/refloc/{reference_id}``, or a model's prediction from
``dataset/{id}/model/{model}/referenceId/{reference_id}``: the routes the
official client reads them with. Each item ends in one state:

    match               the server holds the item's mask and segments
    missing             no such item in the dataset, or it holds no mask
    different-segments  labels, metadata, indices or annotation_id differ
    different-mask      another mask: by content (sha256) where the server
                        serves the bytes it stored, else by mask_url
    extra               (``all_items``) a dataset item with a mask that the
                        manifest does not name
    invalid             the manifest item has errors: it was never sent
    error               it could not be checked (retries exhausted, the
                        local mask is unreadable); the message says why

Local masks are compared by content when the server serves its stored copy
under ``stored_mask_url`` (``segcli serve`` does; the mask_url it answers is
the path the client sent); otherwise, and for remote masks, the mask_url it
holds must be the one segcli sends for the item.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from segcli.compare import (
    Check,
    ItemCheck,
    VerifyStats,
    annotation_id_difference,
    describe,
    digest,
    held_segmentation,
    mask_message,
    scrubbed,
    segment_differences,
)
from segcli.defaults import DEFAULT_ENDPOINT
from segcli.errors import NotFoundError, UsageError
from segcli.model import MaskItem
from segcli.target import Target

if TYPE_CHECKING:
    from segcli.client import NucleusClient
    from segcli.settings import Credentials

#: Where `segcli serve` names the copy it keeps of an uploaded mask (segcli/server/routing.py).
STORED_MASK_KEY = "stored_mask_url"


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifySettings:
    target: Target
    endpoint: str = DEFAULT_ENDPOINT
    concurrency: int = 8
    retries: int = 6
    timeout_s: float = 60.0
    sample: int | None = None  # check this many items, picked at random
    seed: int | None = None  # makes the sample the same at each run
    all_items: bool = False  # also look for dataset items the manifest lacks
    #: ``upload --stage``'s prefix: a local mask is held by its staged URL
    stage: str | None = None


OnCheck = Callable[[ItemCheck], None]


def verify(
    items: Iterable[MaskItem],
    settings: VerifySettings,
    credentials: Credentials,
    *,
    on_check: OnCheck | None = None,
    stats: VerifyStats | None = None,
) -> VerifyStats:
    """Check every item (or ``settings.sample`` of them) against the server.

    Raises AuthError or NotFoundError (bad key, unknown dataset or model)
    before any item is checked, ServerUnavailableError when the server
    does not answer the first request, and UsageError for a model run target.
    """
    if settings.target.readback_route("-") is None:
        raise UsageError(
            "verify reads ground truth or a model's predictions: give the model id, "
            "not a model run (the service reads predictions back by model)"
        )
    stats = stats if stats is not None else VerifyStats()
    if settings.stage:
        from segcli.staging import StagePrefix

        prefix = StagePrefix.parse(settings.stage)
        items = (prefix.sent_as(i) if i.mask and not i.is_remote else i for i in items)
    asyncio.run(_Verifier(settings, credentials, stats, on_check).run(items))
    return stats


def sample_items(items: Iterable[MaskItem], n: int, rng: random.Random) -> list[MaskItem]:
    """``n`` items picked uniformly in one pass (reservoir sampling), in manifest order."""
    kept: list[tuple[int, MaskItem]] = []
    for seen, item in enumerate(items):
        if len(kept) < n:
            kept.append((seen, item))
        else:
            slot = rng.randrange(seen + 1)
            if slot < n:
                kept[slot] = (seen, item)
    return [item for _, item in sorted(kept, key=lambda pair: pair[0])]


class _Verifier:
    def __init__(
        self,
        settings: VerifySettings,
        credentials: Credentials,
        stats: VerifyStats,
        on_check: OnCheck | None,
    ) -> None:
        self.s = settings
        self.credentials = credentials
        self.stats = stats
        self.on_check = on_check
        self.named: set[str] = set()  # reference_ids the manifest names
        self.client: NucleusClient

    async def run(self, items: Iterable[MaskItem]) -> None:
        from segcli.client import NucleusClient
        from segcli.retry import RetryPolicy

        self.client = NucleusClient(
            self.s.endpoint,
            api_key=self.credentials.api_key,
            limited_access_key=self.credentials.limited_access_key,
            timeout_s=self.s.timeout_s,
            max_in_flight=self.s.concurrency,
            retry=RetryPolicy(retries=self.s.retries),
        )
        async with self.client:
            await self._preflight()
            await self._check_all(self._chosen(items), self._check)
            if self.s.all_items:
                await self._check_all(self._unnamed(await self._dataset_items()), self._extra)

    def _counted(self, items: Iterable[MaskItem]) -> Iterator[MaskItem]:
        for item in items:
            self.stats.manifest_items += 1
            if item.reference_id:
                self.named.add(item.reference_id)
            yield item

    def _chosen(self, items: Iterable[MaskItem]) -> Iterable[MaskItem]:
        if self.s.sample is None:
            return self._counted(items)
        return sample_items(self._counted(items), self.s.sample, random.Random(self.s.seed))

    async def _preflight(self) -> None:
        from segcli.preflight import preflight

        await preflight(
            self.client,
            self.s.target,
            self.s.endpoint,
            nothing="was checked",
            again="it reads back every item again",
        )

    async def _check_all(self, things: Iterable[Any], check: Callable[[Any], Any]) -> None:
        """Run ``check`` on each, at most ``concurrency`` at a time, reporting as they end."""
        pending: set[asyncio.Task[ItemCheck | None]] = set()
        limit = self.s.concurrency
        try:
            for thing in things:
                if len(pending) >= limit:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    self._report(done)
                pending.add(asyncio.ensure_future(check(thing)))
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                self._report(done)
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _report(self, done: set[asyncio.Task[ItemCheck | None]]) -> None:
        for task in done:
            result = task.result()  # an AuthError mid-run stops the run here
            if result is None:
                continue
            result = scrubbed(result, self.client.scrub)
            self.stats.counts[result.state.value] += 1
            if self.on_check is not None:
                self.on_check(result)

    async def _read_back(self, reference_id: str) -> Any:
        """The server's answer for one item; None when the dataset has no such item."""
        route = self.s.target.readback_route(reference_id)
        assert route is not None  # verify() refused targets without one
        try:
            return (await self.client.get(route)).body
        except NotFoundError:
            return None

    async def _check(self, item: MaskItem) -> ItemCheck:
        return replace(await self._compare(item), item=item)

    async def _compare(self, item: MaskItem) -> ItemCheck:
        from segcli.client import RequestFailed
        from segcli.storage import MaskReadError

        source = str(item.source)
        errors = [p for p in item.problems if p.is_error]
        if errors or not item.reference_id:
            why = "; ".join(f"[{p.code}] {p.message}" for p in errors) or "no reference_id"
            message = f"the manifest item has errors, so it was never sent: {why}"
            return ItemCheck(item.reference_id or "-", Check.INVALID, source, message)
        try:
            body = await self._read_back(item.reference_id)
            held = held_segmentation(body)
            if held is None:
                where = "is not an item of the dataset" if body is None else "holds no mask"
                return ItemCheck(item.reference_id, Check.MISSING, source, f"the item {where}")
            differences = segment_differences(item.segments, held)
            other_id = annotation_id_difference(item, held)
            differences += [other_id] if other_id else []
            mask = await self._mask_difference(item, held)
        except (RequestFailed, MaskReadError) as exc:
            return ItemCheck(
                item.reference_id, Check.ERROR, source, f"could not check: {exc.message}"
            )
        if differences:
            state, message = Check.DIFFERENT_SEGMENTS, describe(differences)
            if mask is not None:
                message += "; and the mask differs"
        elif mask is not None:
            state, message = Check.DIFFERENT_MASK, mask_message(mask)
        else:
            return ItemCheck(item.reference_id, Check.MATCH, source)
        return ItemCheck(item.reference_id, state, source, message, tuple(differences), mask)

    async def _mask_difference(
        self, item: MaskItem, held: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        stored = held.get(STORED_MASK_KEY)
        route = self.client.route_of(stored) if isinstance(stored, str) else None
        if not item.is_remote and route is not None:
            from segcli.storage import read_mask

            theirs = digest(await self.client.get_bytes(route))
            mine = digest(await asyncio.to_thread(read_mask, item.mask))
            if mine == theirs:
                return None
            return {"compared": "sha256", "manifest": mine, "server": theirs}
        if held.get("mask_url") == item.mask:
            return None
        return {"compared": "mask_url", "manifest": item.mask, "server": held.get("mask_url")}

    async def _dataset_items(self) -> list[str]:
        """Every reference_id of the dataset (``datasetItems``, as ``Dataset.items`` reads it)."""
        body = (await self.client.get(self.s.target.items_route)).body
        listed = body.get("dataset_items") if isinstance(body, Mapping) else None
        refs = [i.get("reference_id") for i in listed or [] if isinstance(i, Mapping)]
        return [r for r in refs if isinstance(r, str)]

    def _unnamed(self, refs: list[str]) -> Iterator[str]:
        return (r for r in refs if r not in self.named)

    async def _extra(self, reference_id: str) -> ItemCheck | None:
        from segcli.client import RequestFailed

        try:
            held = held_segmentation(await self._read_back(reference_id))
        except RequestFailed as exc:
            return ItemCheck(reference_id, Check.ERROR, None, f"could not check: {exc.message}")
        if held is None:
            return None
        message = f"the dataset holds a mask ({held.get('mask_url')}) the manifest does not name"
        return ItemCheck(reference_id, Check.EXTRA, None, message)
