"""A mask as a picture: each segment in a stable colour, the offending pixels lit up.

    values = mask_values(data)                  # the pixel values, or MaskPictureError
    key = ColourKey.of(item, values)            # value -> colour, the legend
    rgb = key.paint(values)                     # the whole mask, coloured
    small = thumbnail(values, key, max_side=256)

A label's colour comes from a hash of it, so "car" is drawn alike in every
run; labels drawn together (the cards of one page, the rows of one preview,
one plot) are kept apart by ``assign_colours``, which moves a label whose
hashed colour an earlier one took, so across pictures of different label
sets a label can change colour. Pixels whose
value has no segment are magenta and void values (``void:``/``--void``) amber;
when a mask has any, every other colour is dimmed so that they stand out, and a
thumbnail rings them in white, since a few stray pixels would
otherwise vanish when the mask is shrunk.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from segcli.defaults import DEFAULT_MAX_PIXELS
from segcli.model import MaskItem, Segment

if TYPE_CHECKING:
    import numpy as np

#: values without a segment (an error) and declared void values (a warning)
NO_SEGMENT_RGB = (255, 0, 255)
VOID_RGB = (255, 176, 0)
RING_RGB = (255, 255, 255)
#: how much of a label's colour stays when offending pixels are shown
DIM_KEEP = 0.35
DIM_TOWARD = (40, 40, 40)
THUMBNAIL_SIDE = 256


class MaskPictureError(Exception):
    """The mask cannot be drawn: ``code`` is the check's (``mask-mode``...), ``message`` why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


# Colours that stay apart from each other and from the two highlight colours
# (no magenta, no amber, no white), from Kelly's and Tableau's lists.
PALETTE = (
    "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#17becf", "#bcbd22", "#7f7f7f",
    "#875692", "#a1caf1", "#637939", "#c2b280", "#008856", "#e68fac", "#5254a3", "#f99379",
    "#604e97", "#b3446c", "#dcd300", "#882d17", "#8db600", "#654522", "#e25822", "#2b3d26",
    "#aec7e8", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#9edae5", "#dbdb8d", "#393b79",
)  # fmt: skip
_RGB = tuple((int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)) for c in PALETTE)

RGB = tuple[int, int, int]


def _slot(label: str) -> int:
    digest = hashlib.blake2b(label.encode("utf-8", "surrogatepass"), digest_size=4).digest()
    return int.from_bytes(digest, "big") % len(PALETTE)


def label_colour(label: str) -> RGB:
    """The colour of ``label`` wherever and whenever it is drawn (from a hash of it)."""
    return _RGB[_slot(label)]


def assign_colours(labels: Iterable[str]) -> dict[str, RGB]:
    """Colours for labels drawn together: each its own while the palette lasts.

    Each label takes its hashed colour unless a label before it (in sorted
    order) has it, then the next free one; so the same set of labels gets
    the same colours in every run, whatever order the items come in.
    """
    taken: set[int] = set()
    out: dict[str, RGB] = {}
    for label in sorted(set(labels)):
        slot = _slot(label)
        if len(taken) < len(PALETTE):
            while slot in taken:
                slot = (slot + 1) % len(PALETTE)
        taken.add(slot)
        out[label] = _RGB[slot]
    return out


def hex_colour(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def mask_values(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The mask's pixel values (height x width, uint8); raises ``MaskPictureError``.

    The bytes go through the same inspection as ``segcli validate`` first, so
    a mask that validate refuses (RGB, 16-bit, a decompression bomb) is refused
    here with the same code and message, before Pillow decodes anything.
    """
    import numpy as np
    from PIL import Image

    from segcli.checks import inspect_data
    from segcli.png import MaskInfo

    found = inspect_data(data, max_pixels=max_pixels)
    if not isinstance(found, MaskInfo):
        raise MaskPictureError(*found)
    with Image.open(io.BytesIO(data)) as image:
        # A palette mask's indices are its values ("P" reads as indices).
        return np.asarray(image)


@dataclass(frozen=True, slots=True)
class LegendRow:
    value: int
    label: str | None  # None: the value has no segment
    pixels: int
    colour: str  # "#rrggbb"
    kind: str  # "segment", "no-segment", "void", "absent" (a segment the mask never uses)


@dataclass(frozen=True, slots=True)
class ColourKey:
    """What each value is drawn as, and the legend that says so."""

    lut: np.ndarray  # (256, 3) uint8: value -> colour as drawn
    no_segment: np.ndarray  # (256,) bool: present values without a segment (lit magenta)
    void: np.ndarray  # (256,) bool: present void values without a segment (lit amber)
    rows: tuple[LegendRow, ...]  # lit values, present segments by pixel count, absent ones

    @property
    def lit(self) -> bool:
        return bool(self.no_segment.any() or self.void.any())

    @classmethod
    def of(
        cls,
        item: MaskItem,
        values: np.ndarray,
        colours: Mapping[str, RGB] | None = None,
        *,
        dim: bool = True,
    ) -> ColourKey:
        return cls.from_counts(item.segments, item.void, value_counts(values), colours, dim=dim)

    @classmethod
    def from_counts(
        cls,
        segments: Iterable[Segment],
        void: Iterable[int],
        counts: list[int],
        colours: Mapping[str, RGB] | None = None,
        *,
        dim: bool = True,
    ) -> ColourKey:
        """``colours``: from ``assign_colours`` for what is drawn together, else by hash;
        ``dim``: dim the labels' colours when some pixels are lit."""
        import numpy as np

        labels: dict[int, str] = {}
        for s in segments:
            labels.setdefault(s.index, s.label)  # a duplicate index: the first, as validate
        # Instances of one label (a panoptic table's three birds) in shades of its colour.
        instance: dict[int, int] = {}
        seen: Counter[str] = Counter()
        for index in sorted(labels):
            instance[index] = seen[labels[index]]
            seen[labels[index]] += 1
        declared = set(void)
        lut = np.empty((256, 3), np.uint8)
        lut[:] = NO_SEGMENT_RGB
        lut[sorted(declared - set(labels))] = VOID_RGB
        no_segment = np.zeros(256, bool)
        void_lit = np.zeros(256, bool)
        present: list[LegendRow] = []
        absent: list[LegendRow] = []
        # Only values that are drawn or listed: the others keep the colour set above.
        for value in sorted(set(labels) | {v for v in range(256) if counts[v]}):
            label = labels.get(value)
            pixels = int(counts[value])
            if label is not None:
                rgb = colours.get(label) if colours else None
                rgb = _shade(rgb or label_colour(label), instance[value])
                kind = "segment" if pixels else "absent"
            elif value in declared:
                rgb, kind = VOID_RGB, "void"
                void_lit[value] = pixels > 0
            else:
                rgb, kind = NO_SEGMENT_RGB, "no-segment"
                no_segment[value] = pixels > 0
            lut[value] = rgb
            if pixels or label is not None:
                row = LegendRow(value, label, pixels, hex_colour(rgb), kind)
                (present if pixels else absent).append(row)
        present.sort(key=lambda r: (r.kind == "segment", -r.pixels, r.value))
        lit = no_segment | void_lit
        if dim and lit.any():
            keep = ~lit
            dimmed = lut[keep] * DIM_KEEP + np.array(DIM_TOWARD) * (1 - DIM_KEEP)
            lut[keep] = dimmed.astype(np.uint8)
        return cls(lut=lut, no_segment=no_segment, void=void_lit, rows=(*present, *absent))

    def paint(self, values: np.ndarray) -> np.ndarray:
        """The mask in colour (height x width x 3, uint8)."""
        painted: np.ndarray = self.lut[values]
        return painted


def _shade(rgb: RGB, instance: int) -> RGB:
    """The colour of a label's ``instance``-th segment: the first as it is, then lighter
    and darker in turn, up to four steps each way."""
    if instance == 0:
        return rgb
    step = min(4, (instance + 1) // 2) * 0.16
    toward = 255 if instance % 2 else 0
    r, g, b = (round(c + (toward - c) * step) for c in rgb)
    return r, g, b


def thumbnail(values: np.ndarray, key: ColourKey, *, max_side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """The mask shrunk to fit ``max_side``, coloured, with every offending pixel kept.

    Colours are sampled (nearest value, never blended: a blend of two labels
    is a third colour that means nothing). A thumbnail pixel is lit when any
    mask pixel it covers is (no segment before void), so one stray pixel still
    shows, and lit pixels get a two-pixel white ring to be found at a glance.
    """
    import numpy as np

    height, width = values.shape
    scale = min(1.0, max_side / max(height, width))
    th, tw = max(1, round(height * scale)), max(1, round(width * scale))
    rows = (np.arange(th) * height) // th
    cols = (np.arange(tw) * width) // tw
    rgb = key.paint(values[np.ix_(rows, cols)])
    if not key.lit:
        return rgb
    lit_void = _shrunk(key.void, values, rows, cols)
    lit_none = _shrunk(key.no_segment, values, rows, cols)
    lit = lit_void | lit_none
    rgb[_grown(_grown(lit)) & ~lit] = RING_RGB
    rgb[lit_void] = VOID_RGB
    rgb[lit_none] = NO_SEGMENT_RGB
    return rgb


def _shrunk(
    which: np.ndarray, values: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Whether any pixel of each block has a value ``which`` marks (256 booleans);
    ``rows``/``cols``: where the blocks start.

    Lit pixels are usually a few strokes: only the band of blocks that holds
    them is reduced (a full reduction is most of a 500-card page's time).
    """
    import numpy as np

    out = np.zeros((len(rows), len(cols)), bool)
    if not which.any():
        return out
    lit = which[values]
    any_row, any_col = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    if not any_row.size:
        return out
    # the first and last block of each axis that holds a lit pixel
    r0, r1 = np.searchsorted(rows, any_row[[0, -1]], side="right") - 1
    c0, c1 = np.searchsorted(cols, any_col[[0, -1]], side="right") - 1
    band = lit[rows[r0] : rows[r1 + 1] if r1 + 1 < len(rows) else None]
    band = band[:, cols[c0] : cols[c1 + 1] if c1 + 1 < len(cols) else None]
    starts_r, starts_c = rows[r0 : r1 + 1] - rows[r0], cols[c0 : c1 + 1] - cols[c0]
    if band.shape == (len(starts_r), len(starts_c)):  # not shrunk: one pixel a block
        out[r0 : r1 + 1, c0 : c1 + 1] = band
        return out
    reduced = np.logical_or.reduceat(band, starts_r, axis=0)
    out[r0 : r1 + 1, c0 : c1 + 1] = np.logical_or.reduceat(reduced, starts_c, axis=1)
    return out


def _grown(lit: np.ndarray) -> np.ndarray:
    """``lit`` and its eight neighbours."""
    import numpy as np

    grown = lit.copy()
    padded = np.pad(lit, 1)
    h, w = lit.shape
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            grown |= padded[dy : dy + h, dx : dx + w]
    out: np.ndarray = grown
    return out


def value_counts(values: np.ndarray) -> list[int]:
    """Pixels per value (256 counts) of a uint8 array."""
    import numpy as np
    from PIL import Image

    if values.dtype == np.uint8 and values.ndim == 2 and values.flags.c_contiguous and values.size:
        height, width = values.shape
        # Pillow counts in C over the array's own memory, several times faster than
        # np.bincount, which first widens every pixel to 64 bits.
        image = Image.frombuffer("L", (width, height), values, "raw", "L", 0, 1)
        counts: list[int] = image.histogram()
        return counts
    counted: list[int] = np.bincount(values.reshape(-1), minlength=256).tolist()
    return counted


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(out, "PNG", compress_level=6)
    return out.getvalue()
