"""segcli: check segmentation masks and bulk-upload them to Nucleus.

The public API is listed in ``__all__``. Names are imported on first use so
that ``import segcli`` (and the CLI's ``--help``) stays fast: numpy, Pillow,
aiohttp and fsspec load only when a function that needs them runs.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Segment": "segcli.model",
    "MaskItem": "segcli.model",
    "Problem": "segcli.model",
    "Severity": "segcli.model",
    "Source": "segcli.model",
    "Verdict": "segcli.model",
    "ItemState": "segcli.model",
    "load_manifest": "segcli.manifest",
    "load_segment_table": "segcli.manifest",
    "validate": "segcli.validation",
    "ValidateSettings": "segcli.validation",
    "ValidationSummary": "segcli.validation",
    "upload": "segcli.pipeline",
    "UploadSettings": "segcli.settings",
    "shard_from_scheduler": "segcli.shards",
    "UploadStats": "segcli.records",
    "ItemOutcome": "segcli.records",
    "Credentials": "segcli.settings",
    "Target": "segcli.target",
    "verify": "segcli.readback",
    "VerifySettings": "segcli.readback",
    "VerifyStats": "segcli.compare",
    "ItemCheck": "segcli.compare",
    "Check": "segcli.compare",
    "Journal": "segcli.journal",
    "SegcliError": "segcli.errors",
    "ManifestError": "segcli.errors",
    "UsageError": "segcli.errors",
    "NucleusError": "segcli.errors",
    "AuthError": "segcli.errors",
    "NotFoundError": "segcli.errors",
    "JournalBusyError": "segcli.errors",
    "ExitCode": "segcli.exitcodes",
    # segcli convert / segcli manifest
    "convert_masks": "segcli.convert.run",
    "ConvertSettings": "segcli.convert.run",
    "folder_items": "segcli.folder_manifest",
    "ManifestWriter": "segcli.manifest.writer",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'segcli' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
