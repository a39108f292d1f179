"""The first requests of a run: the key works and the dataset (and model) exist.

Upload (real or rehearsed) and verify both start here, so a wrong key, an
unknown dataset or a server that does not answer read the same everywhere:
exit 3 for the first two, exit 1 for the last, with nothing done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from segcli.errors import NotFoundError, ServerUnavailableError
from segcli.target import Target

if TYPE_CHECKING:
    from segcli.client import NucleusClient

_NOT_FOUND_HINTS = {
    "dataset": "check --dataset: it takes the dataset's id (ds_...), not its name",
    "model": "check --model: it takes the model's id (prj_...), not its name",
}


async def preflight(
    client: NucleusClient,
    target: Target,
    endpoint: str,
    *,
    nothing: str = "was sent",
    again: str = "items that landed in earlier runs are skipped",
) -> None:
    """GET each route that proves the run can work; raise what stops it.

    ``nothing`` finishes the sentence of the unavailable-server message
    ("Nothing was sent in this run", "Nothing was checked in this run");
    ``again`` says what a re-run does.
    """
    from segcli.client import RequestFailed
    from segcli.journal import clean_endpoint

    where = clean_endpoint(endpoint)
    for route, what in target.preflight_checks():
        try:
            await client.get(route)
        except NotFoundError as exc:
            raise NotFoundError(
                f"{what} at {where} ({exc.message})",
                hint=_NOT_FOUND_HINTS.get(what.split()[0], exc.hint),
            ) from None
        except RequestFailed as exc:
            # Retries are spent and nothing was done: say where, and that
            # re-running is safe (not an "unexpected error").
            raise ServerUnavailableError(
                f"the first request to {where} failed: {exc.message}. "
                f"Nothing {nothing} in this run",
                hint=f"re-run the same command when the server answers ({again}); "
                "a larger --retries waits longer",
            ) from None
