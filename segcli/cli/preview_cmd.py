"""``segcli preview``: draw chosen items of a manifest, mask beside (and over) its image."""

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from segcli.cli import options as o
from segcli.defaults import DEFAULT_MAX_PIXELS
from segcli.exitcodes import ExitCode

if TYPE_CHECKING:
    from segcli.preview import Drawn

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def preview_command(
    manifest: o.Manifest,
    refs: Annotated[
        list[str],
        typer.Argument(
            metavar="REF...", help="reference_ids of the items to draw.", show_default=False
        ),
    ],
    output: Annotated[
        Optional[str],  # noqa: UP045  (text: a trailing / says "a folder")
        typer.Option(
            "-o",
            "--output",
            metavar="PATH",
            help="A .png for all the items (one row each), or a folder for one PNG per item. "
            "Default: drawn in the terminal where it can (kitty, iTerm2), else REF.preview.png "
            "files here.",
            envvar="SEGCLI_PREVIEW_OUTPUT",
        ),
    ] = None,
    format: o.Format = None,
    segments: o.Segments = None,
    void: o.Void = None,
    base_dir: o.BaseDir = None,
    max_pixels: o.MaxPixels = DEFAULT_MAX_PIXELS,
    json_output: o.Json = False,
    s3_endpoint_url: o.S3Endpoint = None,
    gcs_endpoint_url: o.GcsEndpoint = None,
) -> int:
    """Draw the items REF... of MANIFEST: the mask coloured by segment with its legend,
    beside the item's image and blended onto it when the manifest names one (image:).

    Pixels without a segment are magenta, void ones amber, each ringed in white.

    Exit codes: 0 every REF drawn; 1 a REF is not in the manifest or its mask
    cannot be drawn (the others are still drawn); 2 usage error, unreadable
    manifest.

    Example:

    \b
        segcli preview sample_data/manifest.yaml street-0001 -o street-0001.png
    """
    import sys

    from segcli.cli.common import storage_options
    from segcli.cli.inline import inline_image, inline_protocol
    from segcli.cli.lines import printable
    from segcli.cli.output import print_json, stderr_console, stdout_console
    from segcli.cli.validate_cmd import void_values
    from segcli.manifest import load_manifest
    from segcli.picture import assign_colours
    from segcli.preview import draw, find_items, preview_png

    targets = _targets(output)  # a usage error before anything is read
    items = load_manifest(
        manifest, format=format, default_segments=segments, base_dir=base_dir,
        void=void_values(void),
    )  # fmt: skip
    found = find_items(items, refs)
    items.close()
    err = stderr_console()
    out = err if json_output else stdout_console()

    def say(text: str) -> None:
        out.print(printable(text), markup=False, highlight=False)

    for ref in found.missing:
        near = found.near.get(ref)
        hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        say(
            f"{items.label}: {ref}: error [not-found] no item has this reference_id "
            f"({found.read:,} items read){hint}"
        )
    chosen = list(found.items.values())
    colours = assign_colours(s.label for item in chosen for s in item.segments)
    options = storage_options(s3_endpoint_url, gcs_endpoint_url)
    drawn = [
        draw(i, colours=colours, storage_options=options, max_pixels=max_pixels) for i in chosen
    ]
    for d in drawn:
        for severity, kind, message in _said(d):
            say(f"{d.item.source} {d.item.reference_id}: {severity} [{kind}] {message}")
    ready = [d for d in drawn if d.mask is not None]
    written: list[str] = []
    protocol = None
    if output is None and not json_output:
        protocol = inline_protocol(os.environ, sys.stdout.isatty())
    if ready and protocol is not None:
        for d in ready:
            sys.stdout.write(printable(f"{d.item.reference_id} ({d.item.source})") + "\n")
            sys.stdout.write(inline_image(preview_png([d]), protocol))
        sys.stdout.flush()
    elif ready:
        written = _write(ready, targets)
        for path in written:
            say(f"wrote {path}")
    code = ExitCode.OK if not found.missing and len(ready) == len(drawn) else ExitCode.ITEMS_FAILED
    if json_output:
        print_json(
            {
                "items": [_record(d) for d in drawn],
                "not_found": [
                    {"reference_id": r, "near": found.near.get(r, [])} for r in found.missing
                ],
                "written": written,
                "exit_code": int(code),
            }
        )
    return code


def _said(d: "Drawn") -> list[tuple[str, str, str]]:
    """What to tell about one item: its manifest's problems, then why it is not drawn
    (or what is wrong with its image), each code once."""
    lines = [(p.severity.value, p.code, p.message) for p in d.item.problems]
    codes = {code for _, code, _ in lines}
    if d.error is not None:
        lines.append(("error", d.error[0], f"{d.error[1]}; nothing to draw"))
    lines += [("warning", c, m) for c, m in d.notes if c not in codes]
    return lines


def _record(d: "Drawn") -> dict[str, object]:
    return {
        "reference_id": d.item.reference_id,
        "source": str(d.item.source),
        "mask": d.item.mask,
        "image": d.item.image,
        "drawn": d.mask is not None,
        "error": {"code": d.error[0], "message": d.error[1]} if d.error else None,
        "notes": [{"code": c, "message": m} for c, m in d.notes],
        "legend": [
            {
                "index": r.value,
                "label": r.label,
                "pixels": r.pixels,
                "colour": r.colour,
                "kind": r.kind,
            }
            for r in (d.key.rows if d.key else ())
        ],
    }


def _targets(output: Optional[str]) -> Optional[tuple[Path, bool]]:  # noqa: UP045
    """``-o`` checked first: (path, is a folder), for a .png file or a folder (existing, or
    written ending in /); None without ``-o``."""
    from segcli.errors import UsageError

    if output is None:
        return None
    if output.endswith(("/", os.sep)) or os.path.isdir(output):
        return Path(output), True
    if not output.lower().endswith(".png"):
        raise UsageError(
            f"-o {output}: give a .png file (all the items in it, one row each) or a folder "
            "(one PNG per item; end it with / if it does not exist yet)"
        )
    return Path(output), False


def _write(ready: list["Drawn"], target: Optional[tuple[Path, bool]]) -> list[str]:  # noqa: UP045
    from segcli.errors import UsageError
    from segcli.preview import preview_png

    if target is not None and not target[1]:
        jobs = [(target[0], ready)]
    else:
        folder = target[0] if target is not None else Path(".")
        names: set[str] = set()
        jobs = []
        for d in ready:
            name = _file_name(d.item.reference_id)
            while name in names:  # two ids that read the same as file names
                name += "_"
            names.add(name)
            jobs.append((folder / f"{name}.preview.png", [d]))
    written = []
    for path, rows in jobs:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(preview_png(rows))
        except OSError as exc:
            raise UsageError(
                f"cannot write {path}: {exc.strerror or exc}; choose another -o"
            ) from exc
        written.append(str(path))
    return written


def _file_name(reference_id: str) -> str:
    """A reference_id as a file name: no folders, nothing a shell would trip on."""
    name = _UNSAFE_NAME.sub("_", reference_id).strip("._") or "item"
    return name[:120]
