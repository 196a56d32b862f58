"""A caller's policy applied to one request, before anything goes upstream: the model
allowlist, the message count, the output-token cap and default, and which passthrough routes
may be used. Passthrough is no way around a policy: when the policy has an allowlist or a cap,
a passthrough body is read (within the body limit) and checked like a chat request."""

from __future__ import annotations

from .. import registry, safejson
from ..body import read_limited
from ..chat import ChatRequest
from ..config import Config
from ..errors import GatewayError, bad_request
from ..fetch import FetchError
from ..http import Request
from ..passthrough import Native, canonical_path
from ..responses import too_large
from ..routing import Route
from ..safejson import dumps
from .policy import Policy, cap_fields

# OpenAI's own API (as opposed to an OpenAI-compatible server, which may know only max_tokens).
OPENAI_DEFAULT_URL = registry.spec("openai").default_url

# Where each passthrough kind's request names its output limit; and, per endpoint, the field
# that gets the policy's default when the request names none (absent: not a generation call).
_LIMIT_FIELDS = {
    "openai": ("max_tokens", "max_completion_tokens", "max_output_tokens"),
    "anthropic": ("max_tokens",),
    "gemini": ("generationConfig.maxOutputTokens",),
}
_DEFAULT_FIELD = {
    ("openai", "v1/chat/completions"): "max_completion_tokens",
    ("openai", "v1/responses"): "max_output_tokens",
    ("anthropic", "v1/messages"): "max_tokens",
    ("gemini", "generateContent"): "generationConfig.maxOutputTokens",
    ("gemini", "streamGenerateContent"): "generationConfig.maxOutputTokens",
}


def forbidden_model(model: str) -> GatewayError:
    return GatewayError(
        403,
        f"The model `{model}` is not allowed for this client.",
        param="model",
        code="model_not_allowed",
    )


def route_names(route: Route, config: Config) -> tuple[str, ...]:
    """The names a policy's ``models`` patterns are matched against: the name after alias
    resolution, and its provider-qualified form (``openai/*`` also covers bare ``gpt-4o``)."""
    resolved = config.aliases.get(route.requested, route.requested)
    qualified = f"{route.provider.name}/{route.model}"
    return (resolved, qualified)


def enforce_chat(chat: ChatRequest, route: Route, policy: Policy, config: Config) -> ChatRequest:
    """The chat request as the policy lets it go upstream (maybe with a lowered limit)."""
    if policy.models is not None and not policy.allows_model(*route_names(route, config)):
        raise forbidden_model(chat.model)  # (no allowlist: no names to build per request)
    if policy.max_messages is not None and len(chat.body["messages"]) > policy.max_messages:
        raise bad_request(
            f"`messages` has more than the {policy.max_messages} messages allowed.",
            param="messages",
            code="too_many_messages",
        )
    if policy.output_tokens is None or route.kind == "mock":
        return chat
    # An OpenAI-compatible server (Ollama, vLLM, older proxies) may know only max_tokens;
    # OpenAI's reasoning models accept only max_completion_tokens.
    compatible = route.kind == "openai" and route.provider.base_url != OPENAI_DEFAULT_URL
    default_field = "max_tokens" if compatible else "max_completion_tokens"
    body = dict(chat.body)
    if cap_fields(body, ("max_tokens", "max_completion_tokens"), policy, default_field):
        # ``raw`` too: an OpenAI upstream is sent the client's bytes when nothing else changed.
        return chat._replace(body=body, raw=dumps(body))
    return chat


async def enforce_passthrough(
    request: Request, native: Native, policy: Policy, config: Config
) -> None:
    """Refuse (403) or adjust ``request`` (its body, capped) for the caller's policy."""
    provider = native.provider
    if not policy.allows_passthrough(provider.name):
        raise GatewayError(
            403,
            f"The {provider.name} passthrough routes are not allowed for this client.",
            code="route_not_allowed",
        )
    if request.method != "POST" or not policy.inspects_bodies:
        return
    path = canonical_path(native.rest)
    if request.body_stream is not None:
        request.body = await _read(request, config.max_body_bytes)
    if provider.kind == "gemini":
        # …/models/<model>:<verb>: the model is in the path, the limit in the body.
        model, _, verb = path.rpartition("/")[2].partition(":")
        endpoint = verb
    else:
        model, endpoint = None, path
    body = None
    if provider.kind != "gemini" or policy.output_tokens is not None:
        body = _json_body(request.body)
        if model is None:
            model = body.get("model")
    if policy.models is not None:
        if not isinstance(model, str) or not model:
            raise forbidden_model("(none)")
        if not policy.allows_model(model, f"{provider.name}/{model}"):
            raise forbidden_model(model)
    if body is not None and policy.output_tokens is not None:
        default_field = _DEFAULT_FIELD.get((provider.kind, endpoint))
        if default_field == "max_completion_tokens" and provider.base_url != OPENAI_DEFAULT_URL:
            default_field = "max_tokens"  # as for chat: a compatible server may know only this
        if cap_fields(body, _LIMIT_FIELDS[provider.kind], policy, default_field):
            request.body = dumps(body)


async def _read(request: Request, limit: int) -> bytes:
    stream, request.body_stream = request.body_stream, None
    if stream is None:
        return request.body
    try:
        body = await read_limited(stream, limit)
    except FetchError:  # the adapter's upload gave up (too large, or the client left)
        body = None
    if body is None:
        raise too_large(limit)
    return body


def _json_body(raw: bytes) -> dict:
    try:
        body = safejson.loads(raw)
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body
