"""``edgerelay serve --access-log``: one JSON line per request on stderr.

Only the method, the path without its query (Gemini clients may put a key in ``?key=``), the
status and the duration: never headers, bodies or the query, so no secret can reach the log.
uvicorn's own access log prints the query, which is why it stays off.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO


class AccessLog:
    def __init__(self, app, stream: TextIO | None = None) -> None:
        self.app = app
        self.stream = stream or sys.stderr

    def __getattr__(self, name: str):  # the wrapped app's attributes (gateway, fetch)
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0
        repaired = None

        async def send_and_note(message) -> None:
            nonlocal status, repaired
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"x-edgerelay-repaired":
                        repaired = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            entry = {
                "time": round(time.time(), 3),
                "method": scope["method"],
                "path": scope["path"],
                "status": status,  # 0: the client left before any answer
                "ms": round((time.perf_counter() - start) * 1000, 2),
            }
            if repaired:  # the gateway changed the request to be answerable (x-edgerelay-repaired)
                entry["repaired"] = repaired
            self.stream.write(json.dumps(entry) + "\n")
