"""``--html FILE``: one page to look at the problem items of a run.

    with HtmlReport(path, title="segcli validate masks.yaml") as page:
        for verdict in verdicts:
            page.add(verdict.item, verdict.label(), verdict.problems)
        page.finish("FAILED: ...", [("items", n), ...])

The page stands alone: no network, no external file; thumbnails are inlined
as PNG data, the style and the few lines of script are inline and allowed
by their hashes alone (Content-Security-Policy), so nothing else on the page
can run even if a label held markup. It does not: the template is
autoescaped, since reference_ids, labels and messages come from users.

The run itself keeps only what inspection returns (findings, never pixels),
so the masks of the items that get a card are read and decoded once more
here, at the end, and only those: at most ``limit`` of them.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from segcli.defaults import DEFAULT_MAX_PIXELS
from segcli.errors import open_for_writing
from segcli.model import MaskItem, Problem

DEFAULT_LIMIT = 500
#: legend rows shown on a card, then in a <details>, then only counted
LEGEND_SHOWN = 12
LEGEND_FOLDED = 50


@dataclass(frozen=True, slots=True)
class Line:
    """One message of a card: a problem, or a state the command reports (rejected...)."""

    severity: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class _Card:
    item: MaskItem
    state: str
    lines: tuple[Line, ...]


class HtmlReport:
    """Collects the problem items of a run, then writes the page (``finish``)."""

    def __init__(
        self,
        path: Path,
        *,
        title: str,
        limit: int = DEFAULT_LIMIT,
        report_path: Path | None = None,
        workers: int = 2,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        storage_options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.path = path
        self.title = title
        self.limit = limit
        self.report_path = report_path
        self.workers = max(1, workers)
        self.max_pixels = max_pixels
        self.storage_options = storage_options
        self.cards: list[_Card] = []
        self.problem_items = 0
        self.items_by_code: Counter[str] = Counter()
        self.severity: dict[str, str] = {}
        self._fh: IO[str] | None = None

    def __enter__(self) -> HtmlReport:
        self._fh = open_for_writing(self.path, "the HTML report", "--html")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fh is not None:  # the run stopped before finish(): no half a page
            self._fh.close()
            self._fh = None
            self.path.unlink(missing_ok=True)

    def add(
        self,
        item: MaskItem,
        state: str,
        problems: Sequence[Problem] = (),
        *,
        message: str | None = None,
    ) -> None:
        """Note a problem item: its problems, or (none) the state and message it ended in."""
        lines = [Line(p.severity.value, p.code, p.message) for p in problems]
        if not lines:
            lines.append(Line("error", state, message or state))
        self.problem_items += 1
        for line in lines:
            if line.code not in self.severity or line.severity == "error":
                self.severity[line.code] = line.severity
        self.items_by_code.update({line.code for line in lines})
        if len(self.cards) < self.limit:
            self.cards.append(_Card(item, state, tuple(lines)))

    def finish(
        self, headline: str, counts: Iterable[tuple[str, int | str]], *, failed: bool
    ) -> None:
        """Draw the cards' thumbnails and write the page."""
        from segcli import __version__

        assert self._fh is not None, "finish() belongs inside the with block"
        from segcli.picture import assign_colours

        colours = assign_colours(s.label for c in self.cards for s in c.item.segments)
        draw = functools.partial(self._picture, colours=colours)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="segcli-html") as pool:
            pictures = list(pool.map(draw, self.cards))
        used = sorted({row["colour"] for p in pictures for row in p.get("legend_all", ())})
        style = _asset("report.css") + "".join(f".{_css(c)}{{background:{c}}}" for c in used)
        script = _asset("report.js")
        csp = (
            "default-src 'none'; img-src data:; "
            f"style-src '{_sha256(style)}'; script-src '{_sha256(script)}'; "
            "base-uri 'none'; form-action 'none'"
        )
        page = _template().render(
            title=self.title,
            version=__version__,
            generated=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            headline=headline,
            failed=failed,
            counts=list(counts),
            codes=self._codes(),
            cards=[self._card(c, p) for c, p in zip(self.cards, pictures, strict=True)],
            more=self.problem_items - len(self.cards),
            limit=self.limit,
            report_path=str(self.report_path) if self.report_path else None,
            csp=csp,
            style=style,
            script=script,
        )
        self._fh.write(page)
        self._fh.close()
        self._fh = None

    def _codes(self) -> list[dict[str, Any]]:
        from segcli.codes import RULES

        rows: list[dict[str, Any]] = []
        for code, items in sorted(self.items_by_code.items()):
            rule = RULES.get(code)
            rows.append(
                {
                    "code": code,
                    "severity": self.severity[code],
                    "count": items,
                    "description": rule[1] if rule else f"items that ended {code}",
                }
            )
        # Errors first, then by how many items they touch.
        rows.sort(key=lambda r: (r["severity"] != "error", -r["count"], r["code"]))
        return rows

    def _card(self, card: _Card, picture: dict[str, Any]) -> dict[str, Any]:
        item = card.item
        rows = picture.get("legend_all", [])
        folded = rows[LEGEND_SHOWN : LEGEND_SHOWN + LEGEND_FOLDED]
        return {
            "ref": item.reference_id,
            "state": card.state,
            "source": str(item.source),
            "mask": _shown(item.mask),
            "image": _shown(item.image),
            "lines": card.lines,
            "codes": " ".join(dict.fromkeys(line.code for line in card.lines)),
            "picture": picture.get("picture"),
            "note": picture.get("note"),
            "legend": rows[:LEGEND_SHOWN],
            "legend_more": folded,
            "legend_left": max(0, len(rows) - LEGEND_SHOWN - LEGEND_FOLDED),
        }

    def _picture(self, card: _Card, *, colours: Mapping[str, Any]) -> dict[str, Any]:
        """The card's thumbnail and legend, or a note saying why there is none."""
        from segcli.picture import ColourKey, MaskPictureError, mask_values, png_bytes, thumbnail
        from segcli.storage import MaskReadError, read_mask

        item = card.item
        if not item.mask:
            return {"note": "no picture: the item names no mask"}
        try:
            data = read_mask(item.mask, storage_options=self.storage_options)
            values = mask_values(data, max_pixels=self.max_pixels)
        except MaskReadError:
            return {"note": "no picture: the mask cannot be read"}
        except MaskPictureError as exc:
            return {"note": f"no picture: the mask cannot be drawn ({exc.code})"}
        except Exception as exc:  # untrusted bytes: one bad file is one note, not a crash
            return {"note": f"no picture: the mask cannot be drawn ({type(exc).__name__})"}
        key = ColourKey.of(item, values, colours)
        small = thumbnail(values, key)
        height, width = values.shape
        src = "data:image/png;base64," + base64.b64encode(png_bytes(small)).decode("ascii")
        return {
            "picture": {
                "src": src,
                "width": small.shape[1],
                "height": small.shape[0],
                "size": f"{width}x{height}",
                "dimmed": key.lit,  # the legend shows the labels' own colours
            },
            "legend_all": [_legend_row(row) for row in key.rows],
        }


def _shown(path: str | None) -> str | None:
    """A local path below the working directory as a relative one: shorter on a card."""
    if not path or "://" in path or not os.path.isabs(path):
        return path
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _legend_row(row: Any) -> dict[str, Any]:
    label = row.label
    if label is None:
        label = "void (no segment)" if row.kind == "void" else "no segment"
    return {
        "kind": row.kind,
        "label": label,
        "value": row.value,
        "pixels": f"{row.pixels:,}",
        "colour": row.colour,
        "css": _css(row.colour),
    }


def _css(colour: str) -> str:
    return "c-" + colour.lstrip("#")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def _asset(name: str) -> str:
    from importlib.resources import files

    return (files("segcli.report") / "templates" / name).read_text(encoding="utf-8")


def _template() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("segcli.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("report.html.j2")
