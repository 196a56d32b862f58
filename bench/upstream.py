"""A fast loopback fake OpenAI upstream for the benchmark (a bare ASGI app on uvicorn).

POST .../chat/completions answers a small fixed JSON, or with "stream": true a 50-chunk SSE
stream; "pace_ms" in the body spaces the chunks out (the paced stream, for time to first byte);
"finish": true ends the stream as a real answer does (a finish chunk and, when asked, a usage
chunk: what the response cache needs to store it).
"""

from __future__ import annotations

import asyncio
import json
import sys

ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-bench",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).encode()


def chunk(i: int) -> bytes:
    delta = {"role": "assistant", "content": ""} if i == 0 else {"content": f" token{i}"}
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


CHUNKS = [chunk(i) for i in range(49)] + [b"data: [DONE]\n\n"]
FINISH = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,'
    b'"model":"gpt-bench","choices":[{"index":0,"delta":{},"logprobs":null,'
    b'"finish_reason":"stop"}]}\n\n'
)
USAGE = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,'
    b'"model":"gpt-bench","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":48,'
    b'"total_tokens":53}}\n\n'
)
JSON_HEADERS = [(b"content-type", b"application/json"), (b"x-request-id", b"req-bench")]
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8")]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    request = json.loads(body) if body else {}
    if not request.get("stream"):
        await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
        await send({"type": "http.response.body", "body": ANSWER})
        return
    pace = request.get("pace_ms", 0) / 1000
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    chunks = CHUNKS
    if request.get("finish"):
        usage = [USAGE] if (request.get("stream_options") or {}).get("include_usage") else []
        chunks = [*CHUNKS[:-1], FINISH, *usage, CHUNKS[-1]]
    for piece in chunks:
        await send({"type": "http.response.body", "body": piece, "more_body": True})
        if pace:
            await asyncio.sleep(pace)
    await send({"type": "http.response.body", "body": b""})


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
