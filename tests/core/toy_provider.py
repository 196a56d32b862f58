"""A provider kind that exists only in the tests: proof that adding a provider is one module
implementing the contract (core/providers/base.py) plus one registry entry.

The toy upstream takes ``{"prompt": …}`` at ``POST /generate`` and answers ``{"text": …}``, or
streams lines of plain text ending in ``END``.
"""

from __future__ import annotations

from collections.abc import Mapping

from edgerelay.core import registry, safejson
from edgerelay.core.chat import ChatRequest, text_of
from edgerelay.core.chat_output import DONE, ChunkWriter, completion, usage
from edgerelay.core.config import Config
from edgerelay.core.errors import GatewayError, stream_error_frame
from edgerelay.core.fetch import FetchRequest
from edgerelay.core.providers.base import ChatContext
from edgerelay.core.routing import Route

relays_openai = False
local_upstream = None

SPEC = registry.ProviderSpec(
    kind="toy",
    module="tests.core.toy_provider",
    builtin=False,
    allowlist=(("POST", "generate"),),
    key_header=("x-toy-key", "{}"),
    response_headers=frozenset({"x-toy-trace"}),
    error_shape="anthropic",
)


def build_request(
    chat: ChatRequest, route: Route, config: Config, ctx: ChatContext
) -> FetchRequest:
    prompt = text_of(chat.body["messages"][-1].get("content"))
    body = safejson.dumps({"model": route.model, "prompt": prompt, "stream": chat.stream})
    headers = {"content-type": "application/json", **registry.key_headers(route.provider)}
    return FetchRequest("POST", route.provider.base_url + "/generate", headers, body)


def translate_response(body: bytes, route: Route, ctx: ChatContext) -> bytes:
    text = safejson.loads(body)["text"]
    message = {"role": "assistant", "content": text, "refusal": None}
    return completion(ctx.completion_id, ctx.created, route.model, message, "stop", usage(1, 1))


def translate_error(status: int, body: bytes, headers: Mapping[str, str]) -> GatewayError:
    return GatewayError(status, "toy says: " + body.decode())


class ToyStream:
    def __init__(self, route: Route, ctx: ChatContext) -> None:
        self._out = ChunkWriter(ctx.completion_id, ctx.created, route.model, False)
        self._buffer = b""
        self._started = False

    def feed(self, chunk: bytes) -> bytes:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        out = b"" if self._started else self._out.role()
        self._started = True
        for line in lines:
            if line == b"END":
                return out + self._out.finish("stop") + DONE
            out += self._out.content(line.decode())
        return out

    def finish(self) -> bytes:
        return b""

    def fail(self, error: GatewayError) -> bytes:
        return stream_error_frame(error)


def stream_translator(route: Route, ctx: ChatContext) -> ToyStream:
    return ToyStream(route, ctx)
