"""Pictures drawn in the terminal itself, where it can: kitty's and iTerm2's protocols.

Only when standard output is that terminal: a pipe, a file or any other
terminal gets PNG files instead, since these escape sequences would be
garbage there. Terminals are known by what they put in the environment
(kitty, WezTerm and Ghostty speak kitty's protocol; iTerm2 its own).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

KITTY_CHUNK = 4096  # the protocol's largest payload per escape sequence


def inline_protocol(env: Mapping[str, str], is_terminal: bool) -> str | None:
    """``"kitty"``, ``"iterm2"`` or None (no pictures in this terminal)."""
    if not is_terminal:
        return None
    program = env.get("TERM_PROGRAM", "")
    if (
        env.get("TERM") == "xterm-kitty"
        or env.get("KITTY_WINDOW_ID")
        or program
        in (
            "WezTerm",
            "ghostty",
        )
    ):
        return "kitty"
    if program == "iTerm.app" or env.get("LC_TERMINAL") == "iTerm2":
        return "iterm2"
    return None


def inline_image(png: bytes, protocol: str) -> str:
    """The escape sequences that draw ``png`` at the cursor, then a line break."""
    data = base64.b64encode(png).decode("ascii")
    if protocol == "iterm2":
        return f"\x1b]1337;File=inline=1;size={len(png)};preserveAspectRatio=1:{data}\x07\n"
    chunks = [data[i : i + KITTY_CHUNK] for i in range(0, len(data), KITTY_CHUNK)] or [""]
    out = []
    for n, chunk in enumerate(chunks):
        more = 1 if n < len(chunks) - 1 else 0
        head = f"a=T,f=100,m={more}" if n == 0 else f"m={more}"
        out.append(f"\x1b_G{head};{chunk}\x1b\\")
    return "".join(out) + "\n"
