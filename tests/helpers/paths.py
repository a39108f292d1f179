"""Where things are, for every test."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
TESTS = REPO / "tests"
SAMPLE = REPO / "sample_data"
