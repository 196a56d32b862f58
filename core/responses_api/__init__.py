"""The OpenAI Responses API (``POST /v1/responses``) layered over Chat Completions.

A Responses request becomes the chat request the providers already translate
(``request.to_chat``); the chat answer comes back as a ``response`` object (``answer``) or as
the Responses event stream (``events.ResponsesStream``, fed the chat chunks the provider stream
translators produce). Stored responses (``store``) live behind the small async
``store.ResponseStore``; ``route`` is the gateway's handler tying them together.
"""
