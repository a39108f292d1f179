"""``segcli stats --plot``: class balance, mask sizes and segments per mask, in one PNG.

matplotlib is imported here only, on its Agg backend (a figure drawn to a
file, no display, no pyplot state), so no other command pays for it.

Label sets are often long-tailed (a few classes hold most pixels), so the
labels are sorted by area, only the ``top`` largest are drawn one by one and
the rest share one bar; an axis spanning more than two decades is drawn on a
log scale, where the small classes still show.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from segcli.stats import LabelStats, SetStats

DEFAULT_TOP = 40
LOG_RATIO = 100  # from this max/min ratio on, an axis is logarithmic
BUCKETED_FROM = 20  # more distinct segment counts than this: bucket by powers of two
SIZES_SHOWN = 12


def segment_buckets(counts: dict[int, int]) -> list[tuple[str, int]]:
    """Masks per number of segments: one bar each, or powers-of-two buckets when many."""
    if len(counts) <= BUCKETED_FROM:
        return [(str(k), n) for k, n in sorted(counts.items())]
    buckets: dict[tuple[int, int], int] = {}
    for k, n in counts.items():
        low = 0 if k == 0 else 1 << (k.bit_length() - 1)
        high = max(low, 2 * low - 1)
        buckets[(low, high)] = buckets.get((low, high), 0) + n
    return [
        (str(low) if low == high else f"{low}-{high}", n)
        for (low, high), n in sorted(buckets.items())
    ]


def write_plot(stats: SetStats, path: str, *, top: int = DEFAULT_TOP, title: str = "") -> None:
    """Draw the plot of ``stats`` into the PNG at ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from segcli.picture import assign_colours, hex_colour
    from segcli.plot_text import plot_label, save_png

    ranked = stats.ranked()
    shown = ranked[:top]
    rest = ranked[top:]
    bars: list[tuple[str, LabelStats, str]] = []
    colours = assign_colours(s.label for s in shown)
    for s in shown:
        bars.append((plot_label(s.label), s, hex_colour(colours[s.label])))
    if rest:
        other = LabelStats(f"({len(rest):,} other labels)")
        other.pixels = sum(s.pixels for s in rest)
        other.segments = sum(s.segments for s in rest)
        other.masks = max(s.masks for s in rest)  # masks can overlap: the most any one has
        bars.append((other.label, other, "#bbbbbb"))
    for loose in (stats.unlabelled, stats.void):
        if loose.pixels:
            bars.append((loose.label, loose, "#ff00ff" if loose is stats.unlabelled else "#ffb000"))

    rows = max(1, len(bars))
    height = 2.2 + 0.26 * rows + 3.0
    figure = Figure(figsize=(12, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 2, height_ratios=[0.26 * rows + 1.2, 3.0])
    area = figure.add_subplot(grid[0, 0])
    masks = figure.add_subplot(grid[0, 1], sharey=area)
    sizes = figure.add_subplot(grid[1, 0])
    segments = figure.add_subplot(grid[1, 1])

    names = [b[0] for b in bars]
    tint = [b[2] for b in bars]
    _bars(area, names, [b[1].pixels for b in bars], tint, "pixels (area)")
    _bars(masks, names, [b[1].masks for b in bars], tint, "masks it appears in")
    masks.tick_params(labelleft=False)
    area.invert_yaxis()  # the largest on top

    by_size = sorted(stats.sizes.items(), key=lambda x: (-x[1], x[0]))
    size_names = [f"{w}x{h}" for (w, h), _ in by_size[:SIZES_SHOWN]]
    size_counts = [n for _, n in by_size[:SIZES_SHOWN]]
    if len(by_size) > SIZES_SHOWN:
        size_names.append(f"{len(by_size) - SIZES_SHOWN:,} other sizes")
        size_counts.append(sum(n for _, n in by_size[SIZES_SHOWN:]))
    _columns(sizes, size_names, size_counts, "masks per size (width x height)")
    buckets = segment_buckets(dict(stats.segment_counts))
    _columns(segments, [b[0] for b in buckets], [b[1] for b in buckets], "masks per segment count")

    heading = title or "segcli stats"
    note = f"{stats.masks:,} masks, {len(ranked):,} labels"
    if rest:
        note += f"; the {len(shown)} largest drawn, the rest in one bar (--json lists all)"
    figure.suptitle(f"{heading}\n{note}", fontsize=11)
    save_png(figure, path)


def _bars(
    axes: Any, names: Sequence[str], values: Sequence[int], colours: Sequence[str], title: str
) -> None:
    positions = list(range(len(names)))
    axes.barh(positions, values, color=colours, edgecolor="#555555", linewidth=0.4)
    axes.set_yticks(positions, names, fontsize=8)
    axes.set_title(title, fontsize=10)
    _scale(axes, values, "x")
    axes.grid(axis="x", alpha=0.3)


def _columns(axes: Any, names: Sequence[str], values: Sequence[int], title: str) -> None:
    positions = list(range(len(names)))
    axes.bar(positions, values, color="#4c78a8")
    axes.set_xticks(
        positions,
        names,
        fontsize=8,
        rotation=45 if len(names) > 8 else 0,
        ha="right" if len(names) > 8 else "center",
    )
    axes.set_title(title, fontsize=10)
    axes.set_ylabel("masks", fontsize=9)
    _scale(axes, values, "y")
    axes.grid(axis="y", alpha=0.3)


def _scale(axes: Any, values: Sequence[int], axis: str) -> None:
    """Log scale past two decades, else whole numbers on a linear one (counts of masks)."""
    from matplotlib.ticker import MaxNLocator

    positive = [v for v in values if v > 0]
    which = axes.xaxis if axis == "x" else axes.yaxis
    if positive and max(positive) / min(positive) >= LOG_RATIO:
        (axes.set_xscale if axis == "x" else axes.set_yscale)("log")
        axes.set_title(axes.get_title() + ", log scale", fontsize=10)
    else:
        which.set_major_locator(MaxNLocator(integer=True))
