"""``segcli preview``: chosen items drawn, to check a mask (or a conversion) by eye.

    found = find_items(load_manifest("masks.yaml"), ["street-0001"])
    drawn = [draw(item) for item in found.items.values()]
    png = preview_png(drawn)

Each item is one row: the mask coloured by segment (``segcli.picture``: the
same colours and highlights as the HTML report), then, when the item names
an ``image``, the image and the mask blended onto it, and the legend. Pixels
without a segment are lit up at full strength, also in the blend.
matplotlib (Agg backend, no pyplot) lays the rows out and draws the legend;
it is imported only here.
"""

from __future__ import annotations

import difflib
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from segcli.defaults import DEFAULT_MAX_PIXELS
from segcli.model import MaskItem

if TYPE_CHECKING:
    import numpy as np

    from segcli.picture import ColourKey

#: reference_ids kept to suggest a near one for a REF that is not there
SUGGEST_FROM = 100_000
LEGEND_ROWS = 24
PANEL_PX = 1024  # a panel's width at most: masks up to this wide are drawn 1:1
BLEND = 0.5
DPI = 100
PAD_PX = 10
TITLE_PX = 24  # a row's title line
PANEL_TITLE_PX = 18  # "mask", "image", "blended" above the panels
MIN_PANEL_PX = 128  # a smaller mask is drawn 2x, 3x... so that it can be seen


@dataclass(slots=True)
class Found:
    items: dict[str, MaskItem] = field(default_factory=dict)  # REF -> its first item
    missing: list[str] = field(default_factory=list)
    near: dict[str, list[str]] = field(default_factory=dict)  # missing REF -> close ids
    read: int = 0  # items read from the manifest


def find_items(items: Iterable[MaskItem], refs: Sequence[str]) -> Found:
    """The first item of each REF; reading stops once every REF is found."""
    wanted = set(refs)
    found = Found()
    ids: list[str] = []
    for item in items:
        found.read += 1
        if item.reference_id in wanted and item.reference_id not in found.items:
            found.items[item.reference_id] = item
            if len(found.items) == len(wanted):
                break
        elif len(ids) < SUGGEST_FROM:
            ids.append(item.reference_id)
    found.missing = [r for r in dict.fromkeys(refs) if r not in found.items]
    for ref in found.missing:
        found.near[ref] = difflib.get_close_matches(ref, ids, n=3, cutoff=0.6)
    return found


@dataclass(frozen=True, slots=True)
class Drawn:
    """One item, ready to lay out; ``error`` instead of pictures when the mask cannot be drawn."""

    item: MaskItem
    mask: np.ndarray | None = None  # coloured, height x width x 3
    image: np.ndarray | None = None  # the item's image, at the size the mask is drawn
    key: ColourKey | None = None
    size: tuple[int, int] | None = None  # the mask's (width, height)
    error: tuple[str, str] | None = None  # (code, message) of why the mask cannot be drawn
    notes: tuple[tuple[str, str], ...] = ()  # (code, message) about the image


def draw(
    item: MaskItem,
    *,
    colours: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Mapping[str, Any]] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Drawn:
    """Read and draw one item's mask, and its image when it names one. Never raises for
    bad input: what stops the mask is ``error``, what spoils the image a note."""
    import numpy as np

    from segcli.picture import ColourKey, MaskPictureError, mask_values, thumbnail
    from segcli.storage import MaskReadError, read_mask

    if not item.mask:
        return Drawn(item, error=("missing-mask", "the item names no mask"))
    try:
        values = mask_values(
            read_mask(item.mask, storage_options=storage_options), max_pixels=max_pixels
        )
    except MaskReadError as exc:
        return Drawn(item, error=("mask-unreadable", item.unreadable(exc.message)))
    except MaskPictureError as exc:
        return Drawn(item, error=(exc.code, exc.message))
    except Exception as exc:  # untrusted bytes: one bad file is one message
        return Drawn(item, error=("mask-corrupt", f"the mask cannot be decoded ({exc})"))
    key = ColourKey.of(item, values, colours, dim=False)
    height, width = values.shape
    # A mask too small to see is drawn in whole multiples of its pixels (before the
    # lit pixels are ringed, so that a ring does not cover a tiny mask's other pixels).
    times = max(1, MIN_PANEL_PX // max(height, width))
    if times > 1:
        values = values.repeat(times, axis=0).repeat(times, axis=1)
    coloured = thumbnail(values, key, max_side=PANEL_PX)
    image: np.ndarray | None = None
    notes: tuple[tuple[str, str], ...] = ()
    if item.image:
        image, notes = _image(item.image, (width, height), storage_options, max_pixels)
    if image is not None and image.shape != coloured.shape:  # drawn smaller or larger
        from PIL import Image

        drawn_size = (int(coloured.shape[1]), int(coloured.shape[0]))
        image = np.asarray(Image.fromarray(image).resize(drawn_size, Image.Resampling.LANCZOS))
    return Drawn(item, coloured, image, key, (width, height), notes=notes)


def _image(
    uri: str,
    size: tuple[int, int],
    storage_options: Mapping[str, Mapping[str, Any]] | None,
    max_pixels: int,
) -> tuple[np.ndarray | None, tuple[tuple[str, str], ...]]:
    import numpy as np
    from PIL import Image

    from segcli.storage import MaskReadError, read_mask

    try:
        data = read_mask(uri, storage_options=storage_options)
    except MaskReadError as exc:
        return None, (("image-unreadable", f"the image cannot be read: {exc.message}"),)
    try:
        with Image.open(io.BytesIO(data)) as opened:
            w, h = opened.size
            if w * h > max_pixels:
                why = f"the image is {w}x{h}, more pixels than the limit ({max_pixels:,})"
                return None, (("image-unreadable", why),)
            picture = opened.convert("RGB")
    except Exception as exc:  # Pillow's many ways to refuse a file
        why = f"the image {uri} cannot be decoded ({type(exc).__name__}: {exc})"
        return None, (("image-unreadable", why),)
    notes: tuple[tuple[str, str], ...] = ()
    if picture.size != size:
        notes = (
            (
                "size-mismatch",
                f"the image is {w}x{h} but the mask {size[0]}x{size[1]}; the image is "
                "stretched to the mask to draw it (a mask must have its image's size)",
            ),
        )
        picture = picture.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(picture), notes


def blended(drawn: Drawn) -> np.ndarray:
    """The mask over the image, half and half; lit pixels stay at full strength."""
    import numpy as np

    from segcli.picture import NO_SEGMENT_RGB, RING_RGB, VOID_RGB

    assert drawn.mask is not None and drawn.image is not None
    mask, image = drawn.mask, drawn.image
    out = (mask * BLEND + image * (1 - BLEND)).astype(np.uint8)
    for colour in (NO_SEGMENT_RGB, VOID_RGB, RING_RGB):
        lit = np.all(mask == colour, axis=2)
        out[lit] = mask[lit]
    return out


def preview_png(drawn: Sequence[Drawn]) -> bytes:
    """One PNG holding a row per drawn item (those with an error are left out).

    Laid out in pixels, not left to matplotlib's layout: each mask panel is
    exactly as many pixels as the mask drawn (1:1 up to ``PANEL_PX``, so a
    stray pixel is not resampled away), and the figure grows to fit its
    widest title and legend instead of letting them overlap or be cut.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from segcli.plot_text import plot_label, save_png

    rows = [d for d in drawn if d.mask is not None]
    if not rows:
        raise ValueError("nothing to draw")
    figure = Figure(figsize=(1, 1), dpi=DPI)
    FigureCanvasAgg(figure)
    placed: list[tuple[Any, tuple[float, float, float, float]]] = []  # axes, px box
    titles, legends = [], []  # with the (x, y) of each, in px from the top left
    top = 0.0
    width = 0.0
    for d in rows:
        assert d.mask is not None and d.key is not None and d.size is not None
        where = plot_label(str(d.item.source), limit=120)
        size = f"{d.size[0]}x{d.size[1]}"
        name = plot_label(d.item.reference_id, limit=80)
        title = figure.text(0, 0, f"{name}  ({size}, {where})", fontsize=10, va="top")
        titles.append((title, (PAD_PX, top + 6)))
        pictures = [("mask", d.mask)]
        if d.image is not None:
            pictures += [("image", d.image), ("blended", blended(d))]
        height, panel_width = (int(n) for n in d.mask.shape[:2])
        y = top + TITLE_PX + PANEL_TITLE_PX
        x = float(PAD_PX)
        for panel, rgb in pictures:
            axes = figure.add_axes((0, 0, 1, 1))
            axes.imshow(rgb, interpolation="nearest", aspect="auto")
            axes.set_axis_off()
            axes.set_title(panel, fontsize=9, loc="left", pad=3)
            placed.append((axes, (x, y, panel_width, height)))
            x += panel_width + PAD_PX
        legend = _legend(figure, d.key)
        legends.append((legend, (x + PAD_PX, y)))
        box = legend.get_window_extent()
        width = max(width, x + PAD_PX + box.width, PAD_PX + title.get_window_extent().width)
        top = y + max(height, box.height) + PAD_PX
    width += PAD_PX
    height_px = top
    figure.set_size_inches(width / DPI, height_px / DPI)

    def fraction(x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
        return (x / width, 1 - (y + h) / height_px, w / width, h / height_px)

    for axes, box_px in placed:
        axes.set_position(fraction(*box_px))
    for title, (x, y) in titles:
        title.set_position((x / width, 1 - y / height_px))
    for legend, (x, y) in legends:
        legend.set_bbox_to_anchor((x / width, 1 - y / height_px), transform=figure.transFigure)
    out = io.BytesIO()
    save_png(figure, out)
    return out.getvalue()


def _legend(figure: Any, key: ColourKey) -> Any:
    """The legend of one row (placed by ``preview_png`` once the figure's size is known)."""
    from matplotlib.patches import Patch

    from segcli.plot_text import plot_label

    rows = key.rows[:LEGEND_ROWS]
    handles = []
    for row in rows:
        if row.label is None:
            name = "void, no segment" if row.kind == "void" else "NO SEGMENT"
        else:
            name = plot_label(row.label)
        handles.append(
            Patch(
                facecolor=row.colour,
                edgecolor="#555555",
                label=f"{name}  ({row.value}, {row.pixels:,} px)",
            )
        )
    left = len(key.rows) - len(rows)
    if left:
        handles.append(Patch(facecolor="white", edgecolor="white", label=f"... and {left} more"))
    return figure.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(0, 1),
        borderaxespad=0,
        fontsize=8,
        frameon=False,
        title="label (index, pixels)",
        title_fontsize=8,
        alignment="left",
    )
