"""Guards in front of every HTTP route: a cap on request bodies, and on live streams per address.

`BodyCap` is ASGI middleware: a request whose declared length is over the cap is refused with 413
before any of its body is read, and a body sent without a length (chunked) is refused with 413 as
soon as it passes the cap, so nobody can make the server read or hold a large body. Uploads (only
story imports use them) get their own, larger cap; Gradio's `max_file_size` then checks the file.

`StreamsPerAddress` counts the live streams (`/relay/live`) each client address holds, so one
address cannot take the whole process's share of open tabs.
"""

from __future__ import annotations

import json
import threading
from collections import Counter

MAX_BODY_BYTES = 3 * 1024 * 1024  # the largest real request: a story import (at most 2 MB of JSON text) in an event
MAX_UPLOAD_BODY_BYTES = MAX_BODY_BYTES  # /gradio_api/upload (nothing of Relay's uploads files any more)

_TOO_LARGE = {
    "ko": "요청이 너무 큽니다 (최대 {limit:,}바이트).",
    "en": "The request is too large (at most {limit:,} bytes).",
}


class BodyCap:
    """ASGI middleware: 413 for any request body over its route's cap, refused before it is read."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES, upload_limit: int = MAX_UPLOAD_BODY_BYTES):
        self.app, self.limit, self.upload_limit = app, limit, upload_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        cap = self.upload_limit if scope.get("path", "").rstrip("/").endswith("/upload") else self.limit
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > cap:
                return await _refuse(scope, send, cap)
            return await self.app(scope, receive, send)  # the server reads no more than the declared length
        # No declared length (chunked): read at most `cap` bytes here, then hand the body on.
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > cap:
                return await _refuse(scope, send, cap)
            if not message.get("more_body", False):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


class StreamsPerAddress:
    """How many live streams each client address holds (thread-safe)."""

    def __init__(self, cap: int):
        self.cap = cap
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def take(self, address: str) -> bool:
        """Count one more stream for `address`; False (nothing counted) when it already holds `cap`."""
        with self._lock:
            if self._open[address] >= self.cap:
                return False
            self._open[address] += 1
            return True

    def give_back(self, address: str) -> None:
        with self._lock:
            self._open[address] -= 1
            if self._open[address] <= 0:
                del self._open[address]


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


async def _refuse(scope, send, cap: int) -> None:
    lang = "ko" if (_header(scope, b"accept-language") or "").lower().startswith("ko") else "en"
    body = json.dumps({"error": _TOO_LARGE[lang].format(limit=cap)}, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
