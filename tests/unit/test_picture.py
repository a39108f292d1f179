"""Masks as pictures: stable label colours, lit-up pixels that survive a thumbnail."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segcli.model import MaskItem, Segment, Source
from segcli.picture import (
    NO_SEGMENT_RGB,
    PALETTE,
    RING_RGB,
    VOID_RGB,
    ColourKey,
    assign_colours,
    label_colour,
    thumbnail,
    value_counts,
)


def item(*labels: str, void: tuple[int, ...] = ()) -> MaskItem:
    segments = tuple(Segment(i, label) for i, label in enumerate(labels))
    return MaskItem("ref", "m.png", segments, Source("m.yaml", 1), void=void)


def test_a_label_has_one_colour_everywhere() -> None:
    assert label_colour("car") == label_colour("car")
    key_a = ColourKey.of(item("road", "car"), np.array([[0, 1]], np.uint8))
    key_b = ColourKey.of(item("car", "sky"), np.array([[0, 1]], np.uint8))
    assert tuple(key_a.lut[1]) == tuple(key_b.lut[0]) == label_colour("car")


def test_labels_drawn_together_get_distinct_colours_in_any_order() -> None:
    labels = [f"class-{n}" for n in range(len(PALETTE))]
    colours = assign_colours(labels)
    assert len(set(colours.values())) == len(PALETTE)
    assert assign_colours(reversed(labels)) == colours
    more = assign_colours([*labels, "one-too-many"])  # past the palette, colours repeat
    assert len(more) == len(PALETTE) + 1


def test_no_label_colour_is_a_highlight_colour() -> None:
    highlights = {NO_SEGMENT_RGB, VOID_RGB, RING_RGB}
    assert not highlights & set(assign_colours(f"l{n}" for n in range(200)).values())


def test_instances_of_a_label_are_shades_apart() -> None:
    values = np.array([[0, 1, 2]], np.uint8)
    key = ColourKey.of(item("bird", "bird", "bird"), values)
    shades = {tuple(key.lut[v]) for v in range(3)}
    assert len(shades) == 3 and tuple(key.lut[0]) == label_colour("bird")


def test_one_stray_pixel_is_still_lit_in_a_small_thumbnail() -> None:
    values = np.zeros((1024, 2048), np.uint8)
    values[1000, 2040] = 7  # one pixel with no segment, bottom right
    key = ColourKey.of(item("background"), values)
    small = thumbnail(values, key, max_side=256)
    assert small.shape == (128, 256, 3)
    lit = np.argwhere(np.all(small == NO_SEGMENT_RGB, axis=2))
    assert lit.tolist() == [[125, 255]]  # its block, and only it
    ring = np.all(small == RING_RGB, axis=2)
    assert ring[123:128, 253:256].sum() == 5 * 3 - 1  # ringed, clipped at the edge
    assert not ring[:100, :200].any()
    # everything else is dimmed, so the lit pixels stand out
    assert tuple(small[0, 0]) != label_colour("background")
    assert key.rows[0].value == 7 and key.rows[0].kind == "no-segment"
    assert key.rows[0].pixels == 1


def test_void_values_are_amber_and_no_segment_wins_a_shared_block() -> None:
    values = np.zeros((8, 8), np.uint8)
    values[0, 0] = 255  # void
    values[0, 1] = 9  # no segment, in the same 2x2 block once shrunk
    values[7, 7] = 255
    key = ColourKey.of(item("bg", void=(255,)), values)
    small = thumbnail(values, key, max_side=4)
    assert tuple(small[0, 0]) == NO_SEGMENT_RGB
    assert tuple(small[3, 3]) == VOID_RGB
    assert {r.kind for r in key.rows} == {"no-segment", "void", "segment"}


def test_a_clean_mask_is_drawn_in_its_label_colours() -> None:
    values = np.array([[0, 1], [1, 1]], np.uint8)
    key = ColourKey.of(item("sky", "road", "car"), values)
    assert not key.lit
    drawn = thumbnail(values, key)
    assert tuple(drawn[0, 0]) == label_colour("sky") and tuple(drawn[1, 1]) == label_colour("road")
    # the legend: present segments by pixel count, then the segment the mask never uses
    assert [(r.label, r.pixels, r.kind) for r in key.rows] == [
        ("road", 3, "segment"),
        ("sky", 1, "segment"),
        ("car", 0, "absent"),
    ]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 70).flatmap(
        lambda h: st.integers(1, 70).flatmap(
            lambda w: arrays(np.uint8, (h, w), elements=st.sampled_from([0, 0, 0, 1, 7, 255]))
        )
    ),
    st.integers(1, 40),
)
def test_a_thumbnail_lights_exactly_the_blocks_that_hold_a_lit_pixel(
    values: np.ndarray, side: int
) -> None:
    key = ColourKey.of(item("bg", "road", void=(255,)), values)
    small = thumbnail(values, key, max_side=side)
    height, width = values.shape
    th, tw = small.shape[:2]
    rows, cols = (np.arange(th) * height) // th, (np.arange(tw) * width) // tw

    def blocks(mask: np.ndarray) -> np.ndarray:  # the plain reduction, over the whole mask
        return np.logical_or.reduceat(np.logical_or.reduceat(mask, rows, axis=0), cols, axis=1)

    none, void = blocks(values == 7), blocks(values == 255)
    assert np.array_equal(np.all(small == NO_SEGMENT_RGB, axis=2), none)
    assert np.array_equal(np.all(small == VOID_RGB, axis=2), void & ~none)
    assert value_counts(values) == np.bincount(values.reshape(-1), minlength=256).tolist()
