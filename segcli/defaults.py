"""Defaults shared by the library and the CLI, in a module with no imports.

The CLI reads these for its ``--help`` text without loading the modules
that use them (start-up stays fast), and no two places can drift apart.
"""

from __future__ import annotations

DEFAULT_ENDPOINT = "https://api.scale.com/v1/nucleus"

# Big enough for 10k x 10k aerial and pathology tiles; caps what one worker
# holds for one mask at about 100 MB (decompression-bomb guard).
DEFAULT_MAX_PIXELS = 100_000_000
