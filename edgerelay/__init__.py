"""Edgerelay: an AI-API gateway for browser apps.

One import package: ``edgerelay.core`` (sans-IO, standard library only; the ``core/`` folder of
the repository), ``edgerelay.transports`` (the Fetch seam over aiohttp and httpx) and
``edgerelay.server`` (the ASGI adapter and ``edgerelay serve``). Importing this package imports
nothing else, so the Lambda package and the Worker can ship it with ``core`` alone.
"""
