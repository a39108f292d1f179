"""The library surface: every name in segcli.__all__ resolves, lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import segcli
from tests.helpers.paths import REPO, SAMPLE


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
    import segcli.cli.root

    sample = SAMPLE / "manifest.yaml"
    settings = segcli.ValidateSettings(workers=1, pool="inline")
    verdicts = list(segcli.validate(segcli.load_manifest(sample), settings))
    assert len(verdicts) == 7 and all(v.ok for v in verdicts)


def test_public_names_are_what_they_say_after_every_submodule_is_imported() -> None:
    # A submodule named like a public function (segcli/upload.py once) replaces
    # the function on the package as soon as anything imports the submodule.
    code = """
import importlib, inspect, pkgutil, types, segcli
for info in pkgutil.walk_packages(segcli.__path__, "segcli."):
    if not info.name.endswith("__main__"):  # that one runs the CLI
        importlib.import_module(info.name)
bad = []
for name in segcli.__all__:
    value = getattr(segcli, name)
    if isinstance(value, types.ModuleType):
        bad.append(name)
    elif name != "__version__" and not (callable(value) or inspect.isclass(value)):
        bad.append(name)
print(bad, callable(segcli.upload), callable(segcli.validate))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] True True"


def test_the_package_ships_its_type_marker() -> None:
    assert (Path(segcli.__file__).parent / "py.typed").is_file()


def test_the_version_is_written_once() -> None:
    import importlib.metadata

    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    assert importlib.metadata.version("segcli") == segcli.__version__
