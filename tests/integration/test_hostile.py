"""Hostile and broken input, case by case, through the real CLI.

Each row is one case of the corpus (tests/hostile/ and hostile_corpus.py):
a broken manifest, or a broken mask placed between two good items. Every
case runs through ``segcli validate`` and ``segcli upload`` (against a local
server) and must give: the exit code in the row; a message that names the
item (``FILE:LINE REFERENCE_ID``) and says how to fix it; no traceback; and
the good items of the same manifest validated and uploaded, nothing else.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from segcli.cli.root import app
from segcli.server import LocalServer, ServerConfig
from tests.helpers.hostile_corpus import GOOD, MASK_LINE, build_case
from tests.helpers.pools import inspect_on_threads
from tests.helpers.privileges import run_unprivileged
from tests.helpers.upload import KEY

runner = CliRunner()
OUTPUT_MAX_CHARS = 20_000  # a 10 MB line must not come back in a message


@dataclass(frozen=True)
class Case:
    """One hostile input and what segcli must make of it."""

    name: str
    manifest: str | None = None  # a file in tests/hostile/ or a generated one
    mask: str | None = None  # or a broken mask between good-1 and good-2
    exit: int = 1  # for validate and upload alike
    code: str | None = None  # the problem's code...
    at: str | None = None  # ...on the line "MANIFEST:<at>: SEVERITY [code] ..."
    says: tuple[str, ...] = ()  # fragments the output must hold (what and how to fix)
    good: tuple[str, ...] = GOOD  # must validate and land
    lands: tuple[str, ...] = ()  # case items that are fine and must land too

    @property
    def landing(self) -> set[str]:
        return set(self.good) | set(self.lands)


def mask_case(name: str, code: str | None, *says: str, exit: int = 1, lands: bool = False) -> Case:
    reference_id = name.replace(":", "-")  # the item is named after its case
    return Case(
        name=f"mask {name}",
        mask=name,
        exit=exit,
        code=code,
        at=f"{MASK_LINE} {reference_id}",
        says=says,
        lands=(reference_id,) if lands else (),
    )


NO_ITEMS = ("no items",)

CASES = [
    # -- manifests: empty, encodings, line endings, quoting -------------------------
    # Nothing to do is an error (an upstream step failed); --allow-empty makes it 0.
    Case("empty file", "empty.csv", exit=2, says=NO_ITEMS, good=()),
    Case("only a header", "header-only.csv", exit=2, says=NO_ITEMS, good=()),
    Case("BOM csv", "bom.csv", exit=0),
    Case("BOM yaml", "bom.yaml", exit=0),
    Case("BOM jsonl", "bom.jsonl", exit=0),
    Case("CRLF csv", "crlf.csv", exit=0),
    Case("CRLF yaml", "crlf.yaml", exit=0),
    Case("CRLF jsonl", "crlf.jsonl", exit=0),
    Case("quoted commas and newlines", "quoted.csv", exit=0),
    Case("UTF-16", "utf16.csv", exit=2, says=("not UTF-8 text", "save it as UTF-8"), good=()),
    Case("NUL bytes", "nul-bytes.jsonl", exit=2, says=("not UTF-8 text",), good=()),
    Case(
        "non-UTF-8 csv line",
        "latin1-line.csv",
        code="manifest-syntax",
        at="3 caf\ufffd-1",
        says=("not UTF-8 (0xe9 at column 4)", "save the manifest as UTF-8"),
    ),
    Case(
        "non-UTF-8 jsonl line",
        "latin1-line.jsonl",
        code="manifest-syntax",
        at="2 caf\ufffd-2",
        says=("not UTF-8", "save the manifest as UTF-8"),
    ),
    Case(
        "non-UTF-8 yaml",
        "latin1.yaml",
        exit=2,
        says=("line 8 has bytes that are not UTF-8", "save the manifest as UTF-8"),
        good=(),
    ),
    Case(
        "10 MB jsonl line",
        "long-line.jsonl",
        code="manifest-syntax",
        at="2 long",
        says=("line 2 is not valid JSON", "each line must be one JSON object"),
    ),
    Case(
        "10 MB csv cell",
        "long-line.csv",
        code="manifest-syntax",
        at="3 -",
        says=("field larger than field limit", "check its quotes"),
    ),
    # -- manifests: structure ----------------------------------------------------------
    Case(
        "wrong delimiter ;",
        "semicolon.csv",
        exit=2,
        says=("no reference_id or mask column", "comma-separated", "';' or tabs"),
        good=(),
    ),
    Case("wrong delimiter tab", "tabs.csv", exit=2, says=("comma-separated",), good=()),
    Case(
        "YAML with tabs",
        "yaml-tabs.yaml",
        exit=2,
        says=("yaml-tabs.yaml:7", "indented with a tab", "replace the tab with spaces"),
        good=(),
    ),
    Case(
        "YAML anchors and merge keys",
        "yaml-anchors.yaml",
        exit=0,
        code="unknown-field",
        at="7 good-1",
        says=("top-level key 'common' is not used",),
    ),
    Case("YAML plain list", "yaml-list.yaml", exit=0),
    Case(
        "YAML top-level scalar",
        "yaml-scalar.yaml",
        exit=2,
        says=("is not a manifest", "not a mapping with an 'items' list"),
        good=(),
    ),
    Case(
        "YAML duplicate keys",
        "yaml-duplicate-keys.yaml",
        code="manifest-syntax",
        at="8 twice",
        says=("'mask' appears twice", "remove one"),
    ),
    Case(
        "JSON duplicate keys",
        "jsonl-duplicate-keys.jsonl",
        code="manifest-syntax",
        at="2 again",
        says=("'reference_id' appears twice", "remove one"),
    ),
    Case(
        "CSV duplicate columns",
        "duplicate-columns.csv",
        exit=2,
        says=("names mask twice", "keep one"),
        good=(),
    ),
    Case(
        "duplicate reference_id",
        "duplicate-ids.csv",
        code="duplicate-reference-id",
        at="5 dup",
        says=("already appears at", "duplicate-ids.csv:3", "remove or rename"),
        lands=("dup",),  # its first row
    ),
    Case(
        "unknown columns",
        "unknown-columns.csv",
        exit=0,
        code="unknown-field",
        at="2 good-1",
        says=("column 'colour' is not used", "column 'owner'", "known columns"),
    ),
    Case(
        "missing columns",
        "missing-columns.csv",
        exit=2,
        says=("the header has no mask column", "reference_id,mask,segments"),
        good=(),
    ),
    Case(
        "missing fields",
        "missing-fields.jsonl",
        code="missing-mask",
        at="2 no-mask",
        says=("give the path or URL of its PNG mask", "missing-fields.jsonl:3 -: error"),
    ),
    Case(
        "JSON line cut short",
        "broken-json.jsonl",
        code="manifest-syntax",
        at="2 cut-short",
        says=("not valid JSON", "at column"),
    ),
    Case(
        "ragged CSV row",
        "ragged-row.csv",
        code="manifest-syntax",
        at="3 ragged",
        says=("8 cells but the header names 3", "quote cells that contain commas"),
    ),
    Case(
        "unclosed CSV quote",
        "unclosed-quote.csv",
        code="manifest-syntax",
        at="3 unclosed",
        says=("lines 3-4 were read as one record", "quote left open"),
        good=("good-1",),  # good-2's line is swallowed, and named
    ),
    Case(
        "bad segment table",
        "bad-segments.yaml",
        code="bad-segment-index",
        at="5 bad-table",
        says=("outside 0..255", "label is empty"),
    ),
    Case(
        "size mismatch",
        "size-mismatch.yaml",
        code="size-mismatch",
        at="7 wrong-size",
        says=("the mask is 24x24 but the manifest says 640x480",),
    ),
    # -- manifests: ids and types ---------------------------------------------------------
    Case("id with spaces", "ids-spaces.csv", exit=0, lands=("street 0001 left",)),
    Case("id with slashes", "ids-slashes.jsonl", exit=0, lands=("city/street/0001",)),
    Case("id in unicode", "ids-unicode.yaml", exit=0, lands=("straße-東京-🚗",)),
    Case("id with ../", "ids-dotdot.jsonl", exit=0, lands=("../../../etc/passwd",)),
    Case(
        "numbers where strings belong",
        "numbers-for-strings.yaml",
        code="manifest-syntax",
        at="7 -",
        says=(
            "reference_id must be a string, not the number 12.5; quote it",
            "mask must be a path or URL, not the number 42",
            "label must be a string, not a list",
        ),
        lands=("4711",),  # an integer id and numeric labels mean what they say
    ),
    Case(
        "label as text index",
        "index-as-text.jsonl",
        code="bad-segment-index",
        at="2 index-text",
        says=("index 'zero' is a string", "without quotes"),
    ),
    # -- masks -------------------------------------------------------------------------
    mask_case("zero-bytes", "mask-not-png", "empty (0 bytes)", "download it again"),
    mask_case("jpeg-named-png", "mask-not-png", "it is a JPEG", "export the mask again as PNG"),
    mask_case("html-named-png", "mask-not-png", "it is an HTML page", "check the link"),
    mask_case("truncated", "mask-corrupt", "truncated", "partial download or copy"),
    mask_case("bad-crc", "mask-corrupt", "CRC mismatch", "copy the mask again"),
    mask_case("header-only", "mask-corrupt", "no image data", "copy the mask again"),
    mask_case("garbage-chunk", "mask-corrupt", "cannot be decoded", "truncated or damaged"),
    mask_case("bomb-header", "mask-too-large", "100000x100000", "raise the limit"),
    mask_case("16-bit", "mask-mode", "16-bit", "save it as 8-bit"),
    mask_case("rgb", "mask-mode", "an RGB mask", "convert('L')"),
    mask_case("rgba", "mask-mode", "an RGBA mask", "one 8-bit channel"),
    mask_case("gray-alpha", "mask-mode", "grayscale + alpha", "drop the alpha"),
    mask_case("1-bit", "mask-mode", "a 1-bit mask", "save it as 8-bit"),
    mask_case("palette", "mask-palette", "palette", "save it as mode 'L'", exit=0, lands=True),
    mask_case("interlaced", None, exit=0, lands=True),
    mask_case("undeclared-value", "value-without-segment", "7 (4 px)", "add a segment"),
    mask_case("symlink-loop", "mask-unreadable", "symbolic link loop", "the real file"),
    mask_case("directory", "mask-unreadable", "is a folder, not a PNG file"),
    mask_case("missing", "mask-unreadable", "no such file", "check the path"),
    mask_case("no-permission", "mask-unreadable", "permission denied", "make the file readable"),
    mask_case("url:closed", "mask-unreadable", "cannot reach", "check the address"),
    mask_case("url:html", "mask-not-png", "it is an HTML page", "check the link"),
]


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


# -- servers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nucleus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One server for every case; each case uploads into a dataset of its own."""
    data_dir = tmp_path_factory.mktemp("hostile-server")
    server = LocalServer(ServerConfig(data_dir=data_dir, api_keys=(KEY,), auto_items=True))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mask_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    """URLs for the URL cases: an HTML page named .png, and a port nobody listens on."""
    web = tmp_path_factory.mktemp("web")
    (web / "mask.png").write_text("<!doctype html><html><body>Please sign in</body></html>")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(web))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    with socket.socket() as sock:  # a free port, closed again: connecting is refused
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    urls = {
        "html": f"http://127.0.0.1:{httpd.server_address[1]}/mask.png",
        "closed": f"http://127.0.0.1:{closed}/mask.png",
    }
    yield urls.__getitem__
    httpd.shutdown()
    thread.join(10)


@pytest.fixture(params=["thread"])
def pool(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How masks are inspected: threads keep the short run fast; tests/soak/ runs every
    case on worker processes too."""
    kind: str = request.param
    if kind == "thread":
        inspect_on_threads(monkeypatch)
    return kind


# -- running a case ------------------------------------------------------------------------


@dataclass
class Run:
    exit: int
    output: str
    report: list[dict[str, Any]]


def run_cli(args: list[str], report: Path, *, unprivileged: bool, env: dict[str, str]) -> Run:
    args = [*args, "--report", str(report), "--workers", "1"]
    if unprivileged:
        # A file without read permission: only a process that really cannot
        # read it shows what users see, so this case runs in one.
        done = run_unprivileged([sys.executable, "-m", "segcli", *args], env={**os.environ, **env})
        exit_code, output = done.returncode, done.stdout + done.stderr
    else:
        result = runner.invoke(app, args, env=env)
        # a crash would be an exception other than the SystemExit of an exit code
        assert result.exception is None or isinstance(result.exception, SystemExit), result
        exit_code, output = result.exit_code, result.stdout + result.stderr
    lines = report.read_text(encoding="utf-8").splitlines() if report.exists() else []
    return Run(exit_code, output, [json.loads(line) for line in lines])


def check_messages(case: Case, manifest: Path, run: Run) -> None:
    assert "Traceback" not in run.output, run.output
    assert "unexpected error" not in run.output, run.output
    assert len(run.output) < OUTPUT_MAX_CHARS
    for fragment in case.says:
        assert fragment in run.output, (fragment, run.output)
    if case.code is not None:
        assert case.at is not None
        prefix = f"{manifest}:{case.at}: "
        found = [line for line in run.output.splitlines() if line.startswith(prefix)]
        assert any(f"[{case.code}]" in line for line in found), (prefix, run.output)
    if case.exit == 2:
        assert "cannot read the manifest" in run.output and str(manifest) in run.output


def case_id(case: Case) -> str:
    return case.name.replace(" ", "-")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_hostile_input(
    case: Case,
    tmp_path: Path,
    nucleus: LocalServer,
    mask_url: Callable[[str], str],
    pool: str,
) -> None:
    folder = tmp_path / "case"
    manifest = build_case(
        folder,
        manifest=case.manifest,
        mask=case.mask,
        reference_id=(case.mask or "").replace(":", "-"),
        url=mask_url,
    )
    unprivileged = case.mask == "no-permission"
    env = {"NUCLEUS_API_KEY": KEY, "SEGCLI_DEBUG": ""}

    # validate: the exit code, the message, and every good item checked ok
    checked = run_cli(
        ["validate", str(manifest)], tmp_path / "v.jsonl", unprivileged=unprivileged, env=env
    )
    assert checked.exit == case.exit, checked.output
    check_messages(case, manifest, checked)
    passed = {r["reference_id"] for r in checked.report if r["verdict"] in ("ok", "warning")}
    assert case.landing <= passed, checked.report
    if case.code is not None:
        assert case.code in {p["code"] for r in checked.report for p in r["problems"]}

    # upload: the same verdicts, and exactly the good items land
    dataset = nucleus.store.create_dataset(case_id(case))
    sent = run_cli(
        ["upload", str(manifest), "--dataset", dataset, "--endpoint", nucleus.url],
        tmp_path / "u.jsonl",
        unprivileged=unprivileged,
        env=env,
    )
    assert sent.exit == case.exit, sent.output
    check_messages(case, manifest, sent)
    rows = nucleus.store.segmentations(dataset)
    assert sorted(r["reference_id"] for r in rows) == sorted(case.landing), sent.output
    states = {(r["reference_id"], r["source"]): r["state"] for r in sent.report}
    assert {ref for (ref, _), state in states.items() if state == "uploaded"} == case.landing
    failed = {state for (ref, _), state in states.items() if ref not in case.landing}
    assert failed <= {"invalid"}, states
    masks_dir = nucleus.config.data_dir / "masks"
    for row in rows:
        assert Path(row["mask_file"]).parent == masks_dir  # never outside the data dir
        assert all(isinstance(s["label"], str) for s in row["annotations"])
