"""The start of an upload: the client, the preflight and the journal, before any item.

The first chunk of the manifest is parsed while the preflight request is on
the wire; the journal opens (and takes its lock) on a thread as soon as the
manifest proves not empty: creating it is ~20 ms that would otherwise delay
the first batch, and a run that finds it locked stops at once. A dry run
does all of it too, with the journal read-only. Whatever fails, nothing of
the run was sent, and a journal this start made is removed again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segcli.errors import ManifestError
from segcli.journal import Journal, Scope
from segcli.limiter import Limiter
from segcli.model import MaskItem
from segcli.settings import Credentials, UploadSettings

if TYPE_CHECKING:
    from segcli.client import NucleusClient


async def open_run(
    settings: UploadSettings,
    credentials: Credentials,
    first: asyncio.Future[list[MaskItem]],
    *,
    threads: Executor,
    on_retry: Callable[[Any], None],
    manifest_items: Callable[[], int],
    label: str,
    limiter: Limiter,
) -> tuple[NucleusClient, Journal | None]:
    """(client, journal or None) once the preflight passed; raises what stops the run.

    ``manifest_items()`` says how many items the manifest held before the
    shard filter, to tell an empty manifest (an error, unless allowed) from
    an empty shard (fine: its journal is still made, for ``segcli status``).
    """
    from segcli.client import NucleusClient
    from segcli.preflight import preflight
    from segcli.retry import RetryPolicy

    s = settings
    client = NucleusClient(
        s.endpoint,
        api_key=credentials.api_key,
        limited_access_key=credentials.limited_access_key,
        timeout_s=s.timeout_s,
        limiter=limiter,
        retry=RetryPolicy(retries=s.retries),
        on_retry=on_retry,
    )
    checking = asyncio.ensure_future(preflight(client, s.target, s.endpoint))
    journal: Journal | None = None
    try:
        chunk = await asyncio.shield(first)
        if not chunk and not manifest_items() and not s.allow_empty:
            raise ManifestError(
                f"{label} holds no items, so there is nothing to upload",
                hint="an empty manifest usually means a step before this one failed; "
                "pass --allow-empty if an empty manifest is expected",
            )
        if (chunk or manifest_items()) and s.journal_path is not None:
            opening = asyncio.get_running_loop().run_in_executor(threads, open_journal, s)
            try:
                journal = await asyncio.shield(opening)
            except asyncio.CancelledError:
                # Cancelled while the thread still opens it: close it once made.
                opening.add_done_callback(_close_journal)
                raise
        await checking
    except BaseException:
        checking.cancel()
        await asyncio.gather(checking, return_exceptions=True)
        if journal is not None:
            journal.discard()  # made by this run and unused: leave no file
        await client.aclose()
        raise
    return client, journal


def open_journal(s: UploadSettings) -> Journal | None:
    assert s.journal_path is not None
    path = Path(s.journal_path)
    scope = Scope(endpoint=s.endpoint, dataset_id=s.target.dataset_id, target=s.target.kind)
    if s.dry_run:
        # A rehearsal reads what landed but writes nothing, and takes no lock.
        if not path.is_file():
            return None
        return Journal(path, scope, readonly=True)
    return Journal(path, scope)


def _close_journal(opening: asyncio.Future[Any]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        journal = opening.result()
        if journal is not None:
            journal.discard()
