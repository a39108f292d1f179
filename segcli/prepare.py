"""Each item becomes an ``Entry`` to send, or a ``Settled`` outcome: an upload's second stage.

Nothing here records or reports: the coordinator (``pipeline``) finishes
what these functions return. In order, an item is

- invalid from its manifest line (it is never read),
- skipped, when the journal says this exact version already landed,
- invalid from its mask (unreadable, not a PNG, values without a segment...),
- or an ``Entry``: ready to batch, with its fingerprint, its bytes (local
  masks) and its warnings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from segcli.batching import Entry
from segcli.codes import CodePolicy, problem
from segcli.inspector import Found, Inspector, Unread, digest
from segcli.model import ItemState, MaskItem, Problem
from segcli.settings import UploadSettings
from segcli.wire import TableTexts

ALREADY_LANDED = "already uploaded by an earlier run"


@dataclass(frozen=True, slots=True)
class Settled:
    """An item finished without a request."""

    item: MaskItem
    state: ItemState
    message: str | None
    problems: tuple[Problem, ...]
    fingerprint: str


Prepared = Entry | Settled


class Landed(Protocol):
    """What preparing needs of the journal."""

    def landed_state(self, reference_id: str, fingerprint: str) -> ItemState | None: ...


def has_error(problems: tuple[Problem, ...]) -> bool:
    return any(p.is_error for p in problems)


def reads_here(item: MaskItem) -> bool:
    """A local mask of a valid item: read here, once, then inspected and sent."""
    return bool(item.mask) and not item.is_remote and not has_error(item.problems)


class Preparer:
    """Prepares the items of one run; ``for_upload`` builds one from upload settings."""

    def __init__(
        self,
        inspector: Inspector,
        tables: TableTexts,
        *,
        policy: CodePolicy,
        validate: bool = True,
        validate_remote: bool = True,
        force: bool = False,
        update: bool = False,
        journal: Landed | None = None,
        resuming: bool = False,
        sent_as: Callable[[MaskItem], MaskItem] | None = None,
    ) -> None:
        self.inspector = inspector
        self.tables = tables
        self.policy = policy
        self.validate = validate
        self.validate_remote = validate_remote
        self.force = force
        self.update = update
        self.journal = journal
        self.resuming = resuming  # the journal holds items of this scope from earlier runs
        #: what a local item goes out as (``--stage``: its staged URL), for its fingerprint
        self.sent_as = sent_as

    @classmethod
    def for_upload(
        cls,
        settings: UploadSettings,
        inspector: Inspector,
        tables: TableTexts,
        *,
        journal: Landed | None,
        resuming: bool,
        sent_as: Callable[[MaskItem], MaskItem] | None = None,
    ) -> Preparer:
        return cls(
            inspector,
            tables,
            policy=settings.policy,
            validate=settings.validate,
            validate_remote=settings.validate_remote,
            force=settings.force,
            update=settings.update,
            journal=journal,
            resuming=resuming,
            sent_as=sent_as,
        )

    def inspects_remote(self, item: MaskItem) -> bool:
        """Whether preparing a remote ``item`` reads its mask and waits for an inspection."""
        if not item.mask or has_error(item.problems):
            return False
        return item.is_remote and self.validate and self.validate_remote

    def fingerprint(self, item: MaskItem, mask_digest: str | None) -> str:
        from segcli.journal import fingerprint

        return fingerprint(item, mask_digest, segments_text=self.tables(item.segments)[0])

    def skipped(self, item: MaskItem, fp: str) -> Settled | None:
        """The item as skipped, when this exact version already landed (and may stay)."""
        if self.journal is None or not self.resuming or self.force:
            return None
        state = self.journal.landed_state(item.reference_id, fp)
        if state is None:
            return None
        # An item the server ignored (it had a mask) is sent again when the
        # user now asks to replace masks.
        if self.update and state is ItemState.IGNORED:
            return None
        return Settled(item, ItemState.SKIPPED, ALREADY_LANDED, (), fp)

    def without_mask(self, item: MaskItem) -> Prepared:
        """An item whose mask is not read here: invalid from its manifest line, or a remote
        mask sent by URL without an inspection."""
        if has_error(item.problems) or not item.mask:
            first = next((p for p in item.problems if p.is_error), None)
            message = first.message if first is not None else "failed manifest checks"
            return Settled(item, ItemState.INVALID, message, item.problems, "")
        fp = self.fingerprint(item, None)
        return self.skipped(item, fp) or Entry(item, fp, None, item.problems)

    def not_eligible(self, item: MaskItem) -> Settled:
        """A local mask in an ``--async`` run without ``--stage``: the service fetches
        every mask of a job itself, so it cannot take a file from here."""
        found = problem(
            "local-mask-async",
            f"{item.mask} is a local file, and an async job takes only masks the service "
            "can fetch (s3://, gs://, https://); add --stage s3://BUCKET/PREFIX (or gs://) "
            "to copy local masks to a bucket first, or upload without --async",
            reference_id=item.reference_id,
            source=item.source,
        )
        problems = (*item.problems, found)
        return Settled(item, ItemState.INVALID, found.message, problems, "")

    async def remote(self, item: MaskItem) -> Prepared:
        """A remote mask, read and checked in the pool unless it already landed."""
        fp = self.fingerprint(item, None)
        skip = self.skipped(item, fp)
        if skip is not None:
            return skip
        problems = self.policy.apply(await self.inspector.check_remote(item))
        return self._checked(item, fp, None, problems)

    async def local(self, items: list[MaskItem]) -> list[Prepared]:
        """Local masks: read once, skipped or inspected (once per distinct content), checked."""
        datas = await self.inspector.read_local(items)
        out: list[Prepared | None] = []
        done: Prepared | None
        waiting: dict[int, tuple[str, str, bytes]] = {}  # place -> (digest, fingerprint, bytes)
        for item, got in zip(items, datas, strict=True):
            if isinstance(got, Exception):  # MaskReadError and anything the filesystem throws
                reason = getattr(got, "message", None) or f"{item.mask}: {got}"
                out.append(_unreadable(item, reason))
                continue
            key = digest(got)
            # A staged mask lands as its URL: the journal knows it by that and its bytes.
            fp = self.fingerprint(self.sent_as(item) if self.sent_as else item, key)
            done = self.skipped(item, fp)
            if done is None and not self.validate:
                done = Entry(item, fp, got, item.problems)
            if done is None:
                found = self.inspector.known(key)
                if found is not None:
                    done = self._inspected(item, fp, got, found)
                else:
                    waiting[len(out)] = (key, fp, got)
            out.append(done)
        if waiting:
            wanted = [(key, data, items[place].mask) for place, (key, _, data) in waiting.items()]
            found_all = await self.inspector.inspect_masks(wanted)
            for (place, (_, fp, data)), found in zip(waiting.items(), found_all, strict=True):
                item = items[place]
                if isinstance(found, Unread):
                    out[place] = _unreadable(item, found.reason)
                else:
                    out[place] = self._inspected(item, fp, data, found)
        return [p for p in out if p is not None]

    async def checked(self, items: list[MaskItem]) -> list[Prepared]:
        """``segcli validate``'s way: each mask read, inspected and checked by a worker
        (manifest errors or not: every problem is reported), nothing kept but findings."""
        inspect = [i for i in items if i.mask and (self.validate_remote or not i.is_remote)]
        found = iter(await self.inspector.check(inspect) if inspect else [])
        chosen = {id(i) for i in inspect}
        out: list[Prepared] = []
        for item in items:
            problems = next(found) if id(item) in chosen else item.problems
            out.append(self._checked(item, "", None, self.policy.apply(problems)))
        return out

    def _inspected(self, item: MaskItem, fp: str, data: bytes, found: Found) -> Prepared:
        from segcli.checks import mask_problems

        problems = self.policy.apply(item.problems + mask_problems(item, found))
        return self._checked(item, fp, data, problems)

    def _checked(
        self, item: MaskItem, fp: str, data: bytes | None, problems: tuple[Problem, ...]
    ) -> Prepared:
        if has_error(problems):
            first = next(p for p in problems if p.is_error)
            return Settled(item, ItemState.INVALID, first.message, problems, fp)
        return Entry(item, fp, data, problems)


def _unreadable(item: MaskItem, reason: str) -> Settled:
    unreadable = problem(
        "mask-unreadable",
        item.unreadable(reason),
        reference_id=item.reference_id,
        source=item.source,
    )
    return Settled(item, ItemState.INVALID, unreadable.message, (unreadable,), "")
