"""The --html page: self-contained, escaped, bounded; on validate, upload, convert, verify."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

from typer.testing import CliRunner

from segcli.cli.root import app
from tests.helpers.paths import SAMPLE
from tests.helpers.report_masks import HOSTILE_LABEL, HOSTILE_REF, RTL_LABEL, report_manifest

runner = CliRunner()


def validate(*args: str) -> tuple[int, str]:
    done = runner.invoke(app, ["validate", *args, "--workers", "1"])
    assert "Traceback" not in done.output
    return done.exit_code, done.stdout


def test_the_page_stands_alone(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    code, _ = validate(str(SAMPLE / "broken" / "manifest.yaml"), "--html", str(page))
    assert code == 1
    html = page.read_text()
    assert html.count("<article") == 8  # every item with a problem, the two good ones not
    assert "FAILED: 10 items, 2 ok, 1 with warnings, 7 invalid" in html
    # nothing is fetched: no URL in any src or href, one inline script and style,
    # and a policy that allows those two by hash and images from data: only
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert html.count("<script") == 1 and html.count("<style") == 1
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp is not None
    policy = unescape(csp.group(1))
    assert "default-src 'none'" in policy and "img-src data:" in policy
    assert "script-src 'sha256-" in policy and "unsafe-inline" not in policy
    thumbnails = re.findall(
        r'<img src="data:image/png;base64,[^"]+" width="(\d+)" height="(\d+)"', html
    )
    assert len(thumbnails) == 4  # the masks that can be drawn; the others say why not
    assert all(int(w) <= 256 and int(h) <= 256 for w, h in thumbnails)
    assert "no picture: the mask cannot be drawn (mask-mode)" in html
    assert html.count("labels dimmed: the lit pixels stand out") == 1  # pond-0001's value 4
    assert "no picture: the mask cannot be read" in html


def test_users_text_is_escaped(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    code, _ = validate(str(report_manifest(tmp_path / "data")), "--html", str(page))
    assert code == 1
    html = page.read_text()
    assert HOSTILE_REF not in html and "alert(1)>" not in html
    assert "&lt;script&gt;alert(&#34;ref&#34;)&lt;/script&gt;" in html
    assert "&#34;quoted&#34; &lt;b&gt;bold&lt;/b&gt; &amp; &#39;single&#39;" in html
    assert f"<bdi>{RTL_LABEL}</bdi>" in html  # isolated, so it cannot reorder the row
    assert HOSTILE_LABEL not in html


def test_past_the_limit_the_page_counts_the_rest(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    report = tmp_path / "all.jsonl"
    manifest = report_manifest(tmp_path / "data", extra_invalid=30)
    code, _ = validate(
        str(manifest), "--html", str(page), "--html-limit", "5", "--report", str(report)
    )
    assert code == 1
    html = page.read_text()
    assert html.count("<article") == 5
    assert (
        "28 more problem items are not shown here (the page stops at 5, --html-limit); "
        f"the JSONL report {report} holds them all." in html
    )
    # the counts at the top are over every item, not the cards shown
    assert re.search(
        r'data-code="value-without-segment"[^>]*>value-without-segment</button></td>'
        r'\s*<td>error</td>\s*<td class="num">31</td>',
        html,
    )
    assert len(report.read_text().splitlines()) == 34


def test_a_page_that_cannot_be_written_stops_the_run_first(tmp_path: Path) -> None:
    done = runner.invoke(
        app,
        [
            "validate",
            str(SAMPLE / "manifest.yaml"),
            "--html",
            str(tmp_path / "no/r.html"),
            "--json",
        ],
    )
    assert done.exit_code == 2
    assert json.loads(done.stdout)["error"]["code"] == "usage"
    assert "cannot write the HTML report" in done.stderr


def test_a_clean_run_says_so(tmp_path: Path) -> None:
    page = tmp_path / "ok.html"
    code, _ = validate(str(SAMPLE / "manifest.yaml"), "--html", str(page))
    assert code == 0
    html = page.read_text()
    assert "No problems: every item passed." in html and "<article" not in html
    assert "PASSED: 7 items, 7 ok" in html


def test_convert_puts_its_failed_images_on_the_page(tmp_path: Path) -> None:
    page = tmp_path / "convert.html"
    colours = tmp_path / "colour"
    (colours).mkdir()
    # a colour mask with a colour the labels do not have
    from PIL import Image

    Image.new("RGB", (8, 8), (1, 2, 3)).save(colours / "odd.png")
    labels = tmp_path / "labelmap.txt"
    labels.write_text("background:0,0,0::\n")
    done = runner.invoke(
        app,
        ["convert", "colour", str(colours), "--labels", str(labels), "--out", str(tmp_path / "out"),
         "--html", str(page), "--workers", "1"],
    )  # fmt: skip
    assert done.exit_code == 1, done.output
    html = page.read_text()
    assert html.count("<article") == 1 and "unknown-value" in html
    assert "no picture: the item names no mask" in html  # nothing was written for it
