"""Turn a server response into one final state per item.

The service answers a batch with counts (processed, ignored) and a list of
error strings that name the items they are about. Items named in an error
are ``rejected``. For the rest, the counts decide when they are unambiguous
(all processed, or all ignored). When a batch is mixed the counts cannot
say which item was which, so those items are returned as ``unresolved`` and
the caller reads them back from the server instead of guessing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from segcli.model import ItemState


@dataclass(frozen=True, slots=True)
class Resolution:
    states: dict[str, tuple[ItemState, str | None]]  # reference_id -> (state, message)
    unresolved: list[str]  # reference_ids the counts cannot place
    processed: int
    ignored: int
    #: reference_id -> the server's error(s) about it, exactly as answered
    details: dict[str, str] = field(default_factory=dict)


# What to do about the errors the service gives most, by a phrase in its text.
_ADVICE = (
    (
        ("does not exist", "doesn't exist", "not found"),
        "add the item to the dataset first (append), or fix its reference_id in the manifest",
    ),
    (("already", "duplicate"), "re-run with --update to replace what the item holds"),
    (("png", "mask", "segment", "index"), "fix the mask or its segment table, then re-run"),
)


def server_error_text(raw: str) -> str:
    """The service's own words from one error string, and what to do.

    The service answers an item's error as JSON text such as
    ``{"annotation": {...}, "error": "Item with id img-7 doesn't exist"}``;
    people need the sentence, not the echo of what they sent.
    """
    text = raw
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if isinstance(parsed, Mapping):
        found = parsed.get("error") or parsed.get("message")
        if isinstance(found, str) and found.strip():
            text = found
    text = " ".join(text.split())
    lowered = text.lower()
    for phrases, advice in _ADVICE:
        if any(p in lowered for p in phrases):
            return f"the server rejected it: {text}; {advice}"
    return f"the server rejected it: {text}"


def _count(body: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _names(error: str, reference_id: str) -> bool:
    # Whole-token match, so an error about "img-1" does not also reject "img-10".
    pattern = r"(?<![\w.\-/])" + re.escape(reference_id) + r"(?![\w.\-/])"
    return re.search(pattern, error) is not None


def _quotes(error: str, reference_id: str) -> bool:
    return any(f"{q}{reference_id}{q}" in error for q in ("'", '"', "`"))


_JOIN = "\n"  # between several errors about one item (error strings are single-line JSON)


def match_errors(errors: Sequence[Any], reference_ids: Sequence[str]) -> dict[str, str]:
    """reference_id -> the error string(s) that name it.

    An error that quotes some of the batch's ids names exactly those; only
    an error that quotes none falls back to whole-token matching, so an id
    like "a" is not rejected by an error saying "not a png" about another.
    """
    named: dict[str, list[str]] = {}
    for raw in errors:
        text = raw if isinstance(raw, str) else str(raw)
        hits = [ref for ref in reference_ids if ref and _quotes(text, ref)]
        if not hits:
            hits = [ref for ref in reference_ids if ref and _names(text, ref)]
        for ref in hits:
            named.setdefault(ref, []).append(text)
    return {ref: _JOIN.join(msgs) for ref, msgs in named.items()}


def resolve(body: Any, reference_ids: Sequence[str]) -> Resolution:
    if not isinstance(body, Mapping):
        body = {}
    processed = _count(body, "annotations_processed", "predictions_processed")
    ignored = _count(body, "annotations_ignored", "predictions_ignored")
    raw_errors = body.get("errors") or []
    errors = raw_errors if isinstance(raw_errors, list) else [raw_errors]
    rejected = match_errors(errors, reference_ids)

    states = rejected_states(rejected)
    details = {ref: msg for ref, msg in rejected.items()}
    rest = [ref for ref in reference_ids if ref not in rejected]
    unnamed = [e for e in errors if not match_errors([e], reference_ids)]
    n_processed = processed or 0
    n_ignored = ignored or 0
    if processed is None and ignored is None:
        # A 2xx with no counts at all: nothing tells us what landed.
        return Resolution(states, rest, 0, 0, details)
    if n_processed >= len(rest) and n_ignored == 0 and not unnamed:
        states.update({ref: (ItemState.UPLOADED, None) for ref in rest})
        return Resolution(states, [], n_processed, n_ignored, details)
    if n_ignored >= len(rest) and n_processed == 0 and not unnamed:
        hint = "the item already has a mask; re-run with --update to replace it"
        states.update({ref: (ItemState.IGNORED, hint) for ref in rest})
        return Resolution(states, [], n_processed, n_ignored, details)
    return Resolution(states, rest, n_processed, n_ignored, details)


def _each(rejected: Mapping[str, str]) -> dict[str, list[str]]:
    """Undo match_errors' joining: one list of raw errors per reference_id."""
    return {ref: msg.split(_JOIN) for ref, msg in rejected.items()}


def job_errors(errors: Any, reference_ids: Sequence[str]) -> dict[str, str]:
    """reference_id -> the job's error string(s) about it (``job/{id}/errors``).

    Each error is the JSON text ``{"annotation": {...}, "error": "..."}`` of
    the object that failed, so the object's own reference_id names the item
    (``reference_id`` as segmentations are sent, ``referenceId`` as the
    service writes other annotations); an error that is not such an object
    is matched by the ids it quotes, as a sync answer's errors are.
    """
    wanted = set(reference_ids)
    named: dict[str, list[str]] = {}
    loose: list[str] = []
    for raw in errors if isinstance(errors, list) else [errors]:
        text = raw if isinstance(raw, str) else json.dumps(raw)
        ref = _error_reference_id(text)
        if ref in wanted:
            named.setdefault(ref, []).append(text)
        else:
            loose.append(text)
    for ref, text in match_errors(loose, reference_ids).items():
        named.setdefault(ref, []).extend(text.split(_JOIN))
    return {ref: _JOIN.join(texts) for ref, texts in named.items()}


def rejected_states(named: Mapping[str, str]) -> dict[str, tuple[ItemState, str | None]]:
    """Each named item rejected, with the service's words and what to do."""
    return {
        ref: (ItemState.REJECTED, "; ".join(server_error_text(m) for m in msgs))
        for ref, msgs in _each(named).items()
    }


def _error_reference_id(text: str) -> str | None:
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    if not isinstance(parsed, Mapping):
        return None
    obj = parsed.get("annotation") or parsed.get("prediction") or parsed.get("item")
    if not isinstance(obj, Mapping):
        return None
    ref = obj.get("reference_id", obj.get("referenceId"))
    return ref if isinstance(ref, str) else None
