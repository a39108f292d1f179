"""The long versions of the kill tests (``make soak``): 10 kills of a 2,000-item run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration import test_upload_crashes as crashes

pytestmark = pytest.mark.soak


@pytest.mark.parametrize("update", [False, True], ids=["soak", "soak-update"])
def test_ten_random_kills_lose_nothing_and_send_nothing_twice(tmp_path: Path, update: bool) -> None:
    plan = crashes.Schedule(2000, 10, update=update)
    crashes.test_random_kills_lose_nothing_and_send_nothing_twice(tmp_path, plan)
