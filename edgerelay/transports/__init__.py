"""The core's seams implemented for CPython: Fetch over aiohttp or httpx, and the JWT
``SignatureVerifier`` over PyJWT/cryptography (the Worker has its own, over ``js.fetch`` and
WebCrypto).

Each module imports its library at import time; import only the one you use.
"""
