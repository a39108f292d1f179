from __future__ import annotations

from segcli.model import ItemState
from segcli.outcomes import match_errors, resolve


def test_all_processed() -> None:
    body = {"dataset_id": "ds", "annotations_processed": 3, "annotations_ignored": 0, "errors": []}
    res = resolve(body, ["a", "b", "c"])
    assert {r: s for r, (s, _) in res.states.items()} == dict.fromkeys("abc", ItemState.UPLOADED)
    assert res.unresolved == []


def test_all_ignored_carry_a_hint() -> None:
    body = {"predictions_processed": 0, "predictions_ignored": 2}
    res = resolve(body, ["a", "b"])
    assert all(s is ItemState.IGNORED and "--update" in (m or "") for s, m in res.states.values())


def test_errors_name_items_whole_token_only() -> None:
    body = {
        "annotations_processed": 1,
        "annotations_ignored": 0,
        "errors": ["Item with reference_id img-1 not found in dataset"],
    }
    res = resolve(body, ["img-1", "img-10"])
    assert res.states["img-1"][0] is ItemState.REJECTED
    assert "not found" in (res.states["img-1"][1] or "")
    assert res.states["img-10"][0] is ItemState.UPLOADED


def test_mixed_counts_are_not_guessed() -> None:
    body = {"annotations_processed": 1, "annotations_ignored": 1, "errors": []}
    res = resolve(body, ["a", "b"])
    assert res.states == {}
    assert res.unresolved == ["a", "b"]


def test_no_counts_at_all_is_unresolved() -> None:
    res = resolve("OK", ["a"])
    assert res.unresolved == ["a"]


def test_unnamed_error_makes_the_rest_unresolved() -> None:
    body = {"annotations_processed": 1, "annotations_ignored": 0, "errors": ["something broke"]}
    res = resolve(body, ["a", "b"])
    assert sorted(res.unresolved) == ["a", "b"]


def test_match_errors_quotes_and_paths() -> None:
    refs = ["a/b", "a", "x.png"]
    found = match_errors(['bad mask for "a/b"', "'x.png': not a png"], refs)
    assert set(found) == {"a/b", "x.png"}
    # Without quotes, a bare token still names an item.
    assert set(match_errors(["x.png failed"], refs)) == {"x.png"}
