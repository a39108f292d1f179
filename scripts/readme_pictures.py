#!/usr/bin/env python3
"""Draw README's pictures from sample_data/: the --html report, a preview, a stats plot.

    .venv/bin/python scripts/readme_pictures.py   # docs/report.png, preview.png, stats.png
    .venv/bin/python scripts/readme_pictures.py --out /tmp/pictures   # elsewhere

The report is opened in headless chromium (Debian's ``chromium`` and
``chromium-driver``, as the browser tests use) and photographed from the top
through the first cards; the other two are what segcli itself writes.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DOCS = ROOT / "docs"
WIDTH = 1100  # CSS pixels: the page's own width is 1200 at most
REPORT_HEIGHT = 1700  # the summary, the codes and the first cards through pond-0001


def segcli(*args: str, expect: int = 0) -> None:
    done = subprocess.run([sys.executable, "-m", "segcli", *args], cwd=ROOT, capture_output=True)
    if done.returncode != expect:
        raise SystemExit(f"segcli {' '.join(args)}: exit {done.returncode}\n{done.stderr.decode()}")


def main(argv: list[str] | None = None) -> int:
    from selenium.webdriver.common.by import By

    from tests.helpers.browser import chromium

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS, help="folder to write to (docs/)")
    out = parser.parse_args(argv).out.resolve()  # segcli runs in the repository's root
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        segcli("validate", "sample_data/broken/manifest.yaml", "--html", str(page), "-q", expect=1)
        with chromium(Path(tmp) / "profile", width=WIDTH, height=REPORT_HEIGHT) as driver:
            driver.get(page.as_uri())
            pond = driver.find_element(By.CSS_SELECTOR, 'article.card[data-ref="pond-0001"]')
            bottom = pond.rect["y"] + pond.rect["height"] + 12
            shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    shot.crop((0, 0, shot.width, min(shot.height, int(bottom)))).save(
        out / "report.png", optimize=True
    )
    segcli("preview", "sample_data/manifest.yaml", "street-0001", "-o", str(out / "preview.png"))
    segcli("stats", "sample_data/manifest.yaml", "--plot", str(out / "stats.png"), "-q")
    for name in ("report.png", "preview.png", "stats.png"):
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
