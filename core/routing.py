"""Which provider serves a ``model`` string, and what model name the upstream sees."""

from __future__ import annotations

from typing import NamedTuple

from .config import Config, ProviderConfig
from .errors import GatewayError

MOCK_MODELS = ("echo",)


class Route(NamedTuple):
    provider: ProviderConfig | None  # None for the built-in mock provider
    kind: str  # "openai" | "anthropic" | "gemini" | "mock"
    model: str  # the name the upstream sees
    requested: str  # the name the client sent


def route_model(model: str, config: Config) -> Route:
    """Resolve aliases, then split on a known provider prefix only (``openai/gpt-4.1`` is
    OpenAI's ``gpt-4.1``; ``meta-llama/Llama-3.1-8B`` goes whole to the openai provider);
    bare ``claude-*`` and ``gemini-*`` names pick their provider, anything else is OpenAI's."""
    requested = model
    model = config.aliases.get(model, model)
    prefix, slash, rest = model.partition("/")
    if slash and rest:
        if prefix == "mock":
            if rest not in MOCK_MODELS:
                raise GatewayError(
                    404,
                    f"The model `{requested}` does not exist. The mock provider has: "
                    + ", ".join(f"mock/{m}" for m in MOCK_MODELS),
                    code="model_not_found",
                )
            return Route(None, "mock", rest, requested)
        provider = config.providers.get(prefix)
        if provider is not None:
            return Route(provider, provider.kind, rest, requested)
    if model.startswith("claude-"):
        name = "anthropic"
    elif model.startswith("gemini-"):
        name = "gemini"
    else:
        name = "openai"
    provider = config.providers[name]
    return Route(provider, provider.kind, model, requested)


def listed_models(config: Config) -> list[str]:
    """What /v1/models shows: the mock, the aliases, and models named in config."""
    names = [f"mock/{m}" for m in MOCK_MODELS]
    names += list(config.aliases)
    for provider in config.providers.values():
        names += [f"{provider.name}/{m}" for m in provider.models]
    return list(dict.fromkeys(names))
