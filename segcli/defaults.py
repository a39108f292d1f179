"""Defaults shared by the library and the CLI, in a module with no imports.

The CLI reads these for its ``--help`` text without loading the modules
that use them (start-up stays fast), and no two places can drift apart.
"""

from __future__ import annotations

DEFAULT_ENDPOINT = "https://api.scale.com/v1/nucleus"

# Schemes Nucleus can fetch by itself: such masks go as JSON with their URL.
# Everything else (local paths, file://, memory://) is read here and sent as
# multipart bytes. The local server tells them apart the same way.
REMOTE_SCHEMES = ("s3://", "gs://", "http://", "https://")

# Big enough for 10k x 10k aerial and pathology tiles; caps what one worker
# holds for one mask at about 100 MB (decompression-bomb guard).
DEFAULT_MAX_PIXELS = 100_000_000

# Requests in flight an upload may reach when the limit adapts (--max-concurrency).
DEFAULT_MAX_CONCURRENCY = 64
