"""The bare relay the gateway is measured against (not part of the product): uvicorn with
httptools and uvloop, one aiohttp session, the body read whole and sent on, the answer streamed
back chunk by chunk. No routing, checks, identity, limits, cache, observer or header filtering:
what any Python relay pays at the least. Usage: python bench/minimal_relay.py PORT UPSTREAM_URL

With ``-`` for the upstream it only answers /healthz and imports no aiohttp: the start-up floor
(interpreter, asyncio, uvloop, uvicorn with httptools) that relay_bench reports beside the rest.
"""

import sys

import uvicorn

if sys.argv[2] != "-":
    import aiohttp

UPSTREAM = sys.argv[2]
session = None


async def app(scope, receive, send):
    global session
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        return await send({"type": "lifespan.shutdown.complete"})
    if scope["path"] == "/healthz":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        return await send({"type": "http.response.body", "body": b"ok"})
    session = session or aiohttp.ClientSession(auto_decompress=False)
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
    async with session.post(UPSTREAM + scope["path"], data=body, headers=headers) as answer:
        kept = [(b"content-type", answer.headers["content-type"].encode())]
        await send({"type": "http.response.start", "status": answer.status, "headers": kept})
        async for chunk in answer.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


if __name__ == "__main__":
    uvicorn.run(
        app, port=int(sys.argv[1]), log_level="warning", http="httptools", loop="uvloop", ws="none"
    )
