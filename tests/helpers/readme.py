"""README's fenced blocks, with the HTML comment above each: what README tests read."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.helpers.paths import REPO

FENCE = re.compile(r"(?:<!--(?P<note>[^\n]*)-->\n)?```(?P<lang>\w+)\n(?P<body>.*?)```", re.DOTALL)
#: a YAML block that is no segcli manifest (a Kubernetes Job) says so, and which test reads it
NOT_A_MANIFEST = "not a manifest:"


@dataclass
class Block:
    lang: str
    body: str
    note: str

    @property
    def skipped(self) -> bool:
        return self.note.strip().startswith("not run:")

    @property
    def first(self) -> bool:
        return "runs this block first" in self.note

    @property
    def not_a_manifest(self) -> bool:
        return self.note.strip().startswith(NOT_A_MANIFEST)


def blocks() -> list[Block]:
    text = (REPO / "README.md").read_text()
    return [Block(m["lang"], m["body"], m["note"] or "") for m in FENCE.finditer(text)]
