"""Response helpers: every error is JSON ``{"error": "..."}`` except 413."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

# The real service's load balancer answers 413 with an HTML page, not JSON;
# clients must cope with that, so this server does the same.
TOO_LARGE_HTML = (
    "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n"
    "<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n</body>\r\n</html>\r\n"
)


class HttpError(Exception):
    """Raised by handlers to answer with an error; nothing has been stored."""

    def __init__(
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def error_response(
    status: int, message: str, *, headers: Mapping[str, str] | None = None
) -> web.Response:
    if status == 413:
        response = web.Response(
            status=413, text=TOO_LARGE_HTML, content_type="text/html", headers=headers
        )
        # The client may still be sending the body we refuse to read.
        response.force_close()
        return response
    return web.json_response({"error": message}, status=status, headers=headers)
