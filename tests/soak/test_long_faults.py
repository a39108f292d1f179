"""The long versions of the fault tests (``make soak``): the same tests, larger."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration import test_upload_faults as faults

pytestmark = pytest.mark.soak


def test_5000_masks_under_faults_land_every_item_exactly_once(tmp_path: Path) -> None:
    faults.test_faults_land_every_item_exactly_once(tmp_path, 5000)


def test_a_server_that_comes_up_10_s_late_is_waited_for(tmp_path: Path) -> None:
    faults.test_a_server_that_comes_up_late_is_waited_for(tmp_path, 10.0)


def test_a_server_restarted_for_10_s_mid_run_loses_nothing(tmp_path: Path) -> None:
    faults.test_a_server_restarted_mid_run_loses_nothing(tmp_path, 10.0)
