"""Text for matplotlib from users' labels, and saving a figure quietly (preview, stats)."""

from __future__ import annotations

import functools
import re
import unicodedata
import warnings
from typing import IO, Any

LABEL_CHARS = 40  # longer labels are cut, with an ellipsis

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def plot_label(label: str, *, limit: int = LABEL_CHARS) -> str:
    """A label as matplotlib should draw it: as text (a ``$`` would start mathtext),
    on one line, at most ``limit`` characters."""
    text = _CONTROL.sub("\N{REPLACEMENT CHARACTER}", label)
    if len(text) > limit:
        text = text[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"
    text = text.replace("$", r"\$")
    if _bidi_layout() and any(unicodedata.bidirectional(c) in ("R", "AL") for c in text):
        # matplotlib lays text out by the Unicode bidi rules: a right-to-left label
        # isolated keeps its line's own order, "(3, 1,000 px)" not "(1,000 ,3 px)".
        text = "\N{FIRST STRONG ISOLATE}" + text + "\N{POP DIRECTIONAL ISOLATE}"
    return text


@functools.cache
def _bidi_layout() -> bool:
    """Whether matplotlib applies the bidi rules (3.11 on, through libraqm); before, it
    draws characters left to right and would show the isolates as missing glyphs."""
    import matplotlib

    return tuple(matplotlib.__version_info__[:2]) >= (3, 11)


def save_png(figure: Any, target: str | IO[bytes]) -> None:
    """``figure.savefig`` as PNG, without matplotlib's warnings on stderr: a label in a
    script the font lacks is drawn as boxes, which the picture shows anyway."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*Glyph .* missing from", category=UserWarning)
        figure.savefig(target, format="png")
