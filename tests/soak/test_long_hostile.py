"""Every hostile input again, its masks inspected by worker processes (``make soak``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from segcli.server import LocalServer
from tests.integration import test_hostile as hostile
from tests.integration.test_hostile import mask_url, nucleus  # noqa: F401 - fixtures

pytestmark = pytest.mark.soak


@pytest.mark.parametrize("case", hostile.CASES, ids=hostile.case_id)
def test_hostile_input_on_worker_processes(
    case: hostile.Case,
    tmp_path: Path,
    nucleus: LocalServer,  # noqa: F811 - the fixture imported above
    mask_url: Callable[[str], str],  # noqa: F811
) -> None:
    hostile.test_hostile_input(case, tmp_path, nucleus, mask_url, "process")
