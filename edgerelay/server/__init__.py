"""The local/container server: Edgerelay's core as an ASGI app on uvicorn."""
