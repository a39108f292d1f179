"""Who may call: HTTP Basic with the API key as username, or ``x-limited-access-key``.

Returns a refusal (status, message) instead of raising, so the dispatcher
decides how to answer. Keys are compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

LIMITED_KEY_HEADER = "x-limited-access-key"


def _known(key: str, keys: tuple[str, ...]) -> bool:
    # Check every key so the time taken says nothing about which one matched.
    found = False
    for candidate in keys:
        found |= hmac.compare_digest(key.encode(), candidate.encode())
    return found and bool(key)


def basic_username(header: str) -> str | None:
    """The username of a ``Basic`` Authorization header, or None if malformed."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, _password = decoded.partition(":")
    return username if sep else None


def check(headers: Mapping[str, str], keys: tuple[str, ...]) -> tuple[int, str] | None:
    """None when the caller may proceed, else the status and message to answer."""
    authorization = headers.get("Authorization")
    limited = headers.get(LIMITED_KEY_HEADER)
    if authorization is not None and limited is not None:
        return 400, (
            "Send either Basic auth with the API key or the x-limited-access-key header, not both."
        )
    if limited is not None:
        if _known(limited.strip(), keys):
            return None
        return 401, "The x-limited-access-key is not valid."
    if authorization is None:
        return 401, "Authentication required: use HTTP Basic auth with the API key as username."
    username = basic_username(authorization)
    if username is None:
        return 401, "Malformed Authorization header: expected Basic auth with the API key."
    if _known(username, keys):
        return None
    return 401, "The API key is not valid."
