"""The library surface: every name in segcli.__all__ resolves, lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import segcli


def test_every_public_name_resolves() -> None:
    for name in segcli.__all__:
        assert getattr(segcli, name) is not None, name


def test_import_segcli_is_light() -> None:
    code = (
        "import sys, segcli; "
        "print(sorted(m for m in ('numpy', 'PIL', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_library_validate_without_the_cli() -> None:
    # Importing the CLI first used to replace segcli.validate (the function)
    # with the module of the same name; the module is segcli.validation now.
    import segcli.cli

    sample = Path(__file__).resolve().parent.parent / "sample_data" / "manifest.yaml"
    settings = segcli.ValidateSettings(workers=1, pool="inline")
    verdicts = list(segcli.validate(segcli.load_manifest(sample), settings))
    assert len(verdicts) == 7 and all(v.ok for v in verdicts)
