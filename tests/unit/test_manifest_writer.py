"""The manifest writer: what it writes, the readers read back to equal items."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segcli.manifest import load_manifest
from segcli.manifest.writer import ManifestWriter, flow
from segcli.model import MaskItem, Segment, Source
from tests.helpers.paths import SAMPLE

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_flow_values_read_back_equal(value: Any) -> None:
    back = yaml.safe_load(f"key: {flow(value)}\n")["key"]
    assert back == value or (isinstance(value, float) and math.isclose(back, value))
    assert type(back) is type(value) or (isinstance(value, int) and isinstance(back, int))


@pytest.mark.parametrize(
    "text", ["yes", "No", "on", "null", "~", "3", "1.5", "-x", "a: b", "#c", "x "]
)
def test_strings_yaml_would_misread_are_quoted(text: str) -> None:
    assert yaml.safe_load(f"k: {flow(text)}")["k"] == text


@pytest.mark.parametrize("name", ["manifest.yaml", "predictions.yaml", "manifest_long.csv"])
@pytest.mark.parametrize("ext", ["yaml", "csv", "jsonl"])
def test_sample_manifests_round_trip(tmp_path: Path, name: str, ext: str) -> None:
    items = list(load_manifest(SAMPLE / name))
    target = tmp_path / f"out.{ext}"
    with ManifestWriter(str(target), default_segments=items[1].segments) as writer:
        for item in items:
            writer.write(item)
    back = list(load_manifest(target))
    assert [(i.reference_id, i.mask, i.segments, i.annotation_id, i.image) for i in back] == [
        (i.reference_id, i.mask, i.segments, i.annotation_id, i.image) for i in items
    ]
    assert all(i.image for i in items)  # the sample manifests name their images
    assert all(not i.problems for i in back)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=10).filter(str.strip), json_values),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from(["yaml", "csv", "jsonl"]),
)
def test_any_labels_and_metadata_round_trip(tmp_path: Path, rows: Any, ext: str) -> None:
    segments = tuple(Segment(n, label, {"m": meta}) for n, (label, meta) in enumerate(rows))
    item = MaskItem("ref", str(tmp_path / "m.png"), segments, Source("x", 1), width=3, height=2)
    target = tmp_path / f"h.{ext}"
    with ManifestWriter(str(target)) as writer:
        writer.write(item)
    [back] = load_manifest(target)
    assert back.segments == segments  # floats too: written with repr, read back exact
    assert (back.width, back.height) == (3, 2)
