"""--html on the commands that talk to a server: upload's invalid items, verify's differences."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from segcli.cli.root import app
from tests.helpers.report_masks import report_manifest
from tests.helpers.upload import KEY, Nucleus

runner = CliRunner()


def test_upload_and_verify_pages_show_what_needs_attention(tmp_path: Path) -> None:
    manifest = report_manifest(tmp_path / "data")
    refs = ["corner-0001", "missing-0001", "clean-0001", '<script>alert("ref")</script>']
    nucleus = Nucleus(tmp_path, refs)
    env = {"NUCLEUS_API_KEY": KEY, "NUCLEUS_ENDPOINT": nucleus.url, "SEGCLI_WORKERS": "1"}
    try:
        page = tmp_path / "upload.html"
        done = runner.invoke(
            app,
            ["upload", str(manifest), "--dataset", nucleus.dataset_id, "--html", str(page)],
            env=env,
        )
        assert done.exit_code == 1, done.output  # two invalid items
        html = page.read_text()
        assert (
            "DONE WITH FAILURES: 4 items: uploaded 2, ignored 0, skipped 0, rejected 0, invalid 2"
            in html
        )
        assert html.count("<article") == 3  # the two invalid items and the one with a warning
        assert 'data-ref="corner-0001"' in html and 'data-ref="clean-0001"' not in html
        verified = tmp_path / "verify.html"
        done = runner.invoke(
            app,
            ["verify", str(manifest), "--dataset", nucleus.dataset_id, "--html", str(verified)],
            env=env,
        )
        assert done.exit_code == 1, done.output
        html = verified.read_text()
        assert html.count("<article") == 2  # the items that were never sent
        # verify knows the manifest, not the masks: both were never sent, so are missing
        assert html.count('class="state missing"') == 2, re.findall(r"<h3>.*?</h3>", html)
        assert html.count("the item holds no mask") == 2
        assert html.count("data:image/png;base64,") == 1  # corner's mask; missing's is not there
    finally:
        nucleus.stop()
