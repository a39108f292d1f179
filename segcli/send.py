"""One batch on the wire, and what became of each of its items: an upload's third stage.

``Sender.send(batch)`` posts the batch (JSON for URLs, multipart for local
masks), splits it on a 413, turns the answer into a state per item
(``outcomes.resolve``), and reads back from the server whatever the counts
cannot place, or what a lost answer may have landed. It returns
``BatchResult``s and records nothing: the coordinator finishes the items.
A request that runs out of retries on an unreachable or failing service
raises ``Outage`` after its items are returned as failed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from segcli.batching import Batch, Entry
from segcli.compare import held_segmentation
from segcli.model import ItemState
from segcli.outcomes import resolve
from segcli.records import PlannedRequest, UploadStats
from segcli.target import Target
from segcli.wire import RequestBodies

UNPLACED = (
    "the server's counts do not say whether this item landed and it could not be "
    "read back; re-run (with --update to be sure)"
)


class Answer(Protocol):
    """What the client returns for a request (``segcli.client.Response``)."""

    @property
    def body(self) -> Any: ...
    @property
    def uncertain(self) -> bool: ...


class Client(Protocol):
    """What sending needs of the HTTP client (``segcli.client.NucleusClient``)."""

    async def get(self, route: str) -> Answer: ...
    async def post_json(self, route: str, body: bytes) -> Answer: ...
    async def post_multipart(
        self, route: str, serialized_request: bytes, files: list[tuple[str, bytes]]
    ) -> Answer: ...


@dataclass(slots=True)
class BatchResult:
    """The items of one request (or one half of a split one) and their states."""

    batch: Batch
    states: dict[str, tuple[ItemState, str | None]]  # reference_id -> (state, message)
    details: dict[str, str] = field(default_factory=dict)  # the server's raw error
    replied_at: float = field(default_factory=time.perf_counter)

    def outcomes(self) -> list[tuple[Entry, ItemState, str | None, str | None]]:
        out = []
        for entry in self.batch.entries:
            state, message = self.states[entry.item.reference_id]
            out.append((entry, state, message, self.details.get(entry.item.reference_id)))
        return out


class Outage(Exception):
    """A request ran out of retries on an unreachable or failing service: stop sending."""

    def __init__(self, message: str, results: list[BatchResult]) -> None:
        super().__init__(message)
        self.message = message
        self.results = results  # what was settled before it (the failed batch included)


class Sender:
    def __init__(
        self,
        client: Client,
        target: Target,
        bodies: RequestBodies,
        stats: UploadStats,
        *,
        endpoint: str,
        update: bool,
    ) -> None:
        self.client = client
        self.target = target
        self.bodies = bodies
        self.stats = stats  # the request counters: sending bumps them, it settles no item
        self.endpoint = endpoint
        self.update = update

    async def send(self, batch: Batch) -> list[BatchResult]:
        """Post the batch; a 413 splits it in two (recursively) and sends the halves."""
        from segcli.client import PayloadTooLarge, RequestFailed

        route = self.target.upload_route
        self.stats.requests += 1
        if self.stats.first_send is None:
            self.stats.first_send = time.perf_counter()
        try:
            if batch.remote:
                answer = await self.client.post_json(route, self.bodies.json(batch))
            else:
                answer = await self.client.post_multipart(
                    route, self.bodies.json(batch), self.bodies.files(batch)
                )
        except PayloadTooLarge as exc:
            if len(batch) > 1:
                first, second = batch.split()
                results = await self.send(first)
                try:
                    return results + await self.send(second)
                except Outage as outage:
                    outage.results[:0] = results
                    raise
            return [_all(batch, ItemState.FAILED, exc.message)]
        except RequestFailed as exc:
            failed = [_all(batch, ItemState.FAILED, exc.message)]
            if exc.status is None or exc.status >= 500:
                # Unreachable (refused, reset, DNS, timeouts) or failing (5xx)
                # for longer than the retries last: every other request would
                # fail the same way, one by one. Stop; the rest stays to do.
                from segcli.journal import clean_endpoint

                raise Outage(
                    f"the server at {clean_endpoint(self.endpoint)} stopped answering: "
                    f"{exc.message}",
                    failed,
                ) from None
            return failed
        self.stats.sent_items += len(batch)
        return [await self._placed(batch, answer)]

    async def _placed(self, batch: Batch, answer: Answer) -> BatchResult:
        refs = [e.item.reference_id for e in batch.entries]
        resolution = resolve(answer.body, refs)
        states = dict(resolution.states)
        for ref in resolution.unresolved:
            entry = next(e for e in batch.entries if e.item.reference_id == ref)
            states[ref] = await self.read_back(entry)
        if answer.uncertain and not self.update:
            await self._claim_own_writes(batch, states)
        return BatchResult(batch, states, dict(resolution.details))

    async def _claim_own_writes(
        self, batch: Batch, states: dict[str, tuple[ItemState, str | None]]
    ) -> None:
        """Tell our own lost write from someone else's mask, for items found ignored.

        An earlier attempt of this request may have landed with only its
        answer lost; the retry then finds our mask in place and the server
        counts it ignored. The server holding exactly this item's
        segmentation means the mask is ours (or one identical to it): uploaded.
        """
        for entry in batch.entries:
            ref = entry.item.reference_id
            if states[ref][0] is ItemState.IGNORED:
                found = await self.read_back(entry)
                if found[0] is ItemState.UPLOADED:
                    states[ref] = found

    async def read_back(self, entry: Entry) -> tuple[ItemState, str | None]:
        """Ask the server what it holds for an item the counts could not place."""
        route = self.target.readback_route(entry.item.reference_id)
        if route is None:
            return ItemState.FAILED, UNPLACED
        try:
            answer = await self.client.get(route)
        except Exception:  # retries spent, or refused: the state stays unknown
            return ItemState.FAILED, UNPLACED
        held = held_segmentation(answer.body)
        if held is None:
            return (
                ItemState.FAILED,
                "the server accepted the request but holds no mask for this item",
            )
        mine = entry.item.payload()
        same = held.get("annotation_id") == mine["annotation_id"] and _segments(held) == _segments(
            mine
        )
        if entry.item.is_remote:
            # A URL mask reads back with the mask_url sent: another URL is another mask,
            # whatever its segments (a local mask's bytes have no such name to compare).
            same = same and held.get("mask_url") == mine["mask_url"]
        if same:
            return ItemState.UPLOADED, None
        return (
            ItemState.IGNORED,
            "the item already has a different mask; re-run with --update to replace it",
        )

    def rehearse(self, batch: Batch) -> PlannedRequest:
        """The request a dry run would make for this batch, exactly."""
        from segcli.journal import clean_endpoint

        kind, size = self.bodies.size(batch)
        url = f"{clean_endpoint(self.endpoint)}/{self.target.upload_route}"
        refs = tuple(e.item.reference_id for e in batch.entries)
        return PlannedRequest("POST", url, kind, size, refs)


def _all(batch: Batch, state: ItemState, message: str | None) -> BatchResult:
    return BatchResult(batch, {e.item.reference_id: (state, message) for e in batch.entries})


def _segments(segmentation: Mapping[str, Any]) -> list[tuple[int, str]]:
    out = []
    for seg in segmentation.get("annotations") or []:
        if isinstance(seg, Mapping):
            out.append((int(seg.get("index", -1)), str(seg.get("label"))))
    return sorted(out)
