"""Which provider serves a ``model`` string, and what model name the upstream sees."""

from __future__ import annotations

from typing import NamedTuple

from . import registry
from .config import Config, ProviderConfig
from .errors import GatewayError


class Route(NamedTuple):
    provider: ProviderConfig
    kind: str  # the provider's registered kind
    model: str  # the name the upstream sees
    requested: str  # the name the client sent


def route_model(model: str, config: Config) -> Route:
    """Resolve aliases, then split on a known provider prefix only (``openai/gpt-4.1`` is
    OpenAI's ``gpt-4.1``; ``meta-llama/Llama-3.1-8B`` goes whole to the openai provider);
    bare names go to the kind whose prefix they carry (``claude-*``, ``gemini-*``), anything
    else to OpenAI."""
    requested = model
    model = config.aliases.get(model, model)
    prefix, slash, rest = model.partition("/")
    if slash and rest:
        provider = config.providers.get(prefix)
        if provider is not None:
            fixed = registry.spec(provider.kind).fixed_models
            if fixed and rest not in fixed:
                raise GatewayError(
                    404,
                    f"The model `{requested}` does not exist. The {provider.name} provider has: "
                    + ", ".join(f"{provider.name}/{m}" for m in fixed),
                    code="model_not_found",
                )
            return Route(provider, provider.kind, rest, requested)
    kind = registry.DEFAULT_KIND
    for prefixes, owner in registry.BARE_PREFIXES:
        if model.startswith(prefixes):
            kind = owner
            break
    provider = config.providers[kind]
    return Route(provider, provider.kind, model, requested)


def listed_models(config: Config) -> list[str]:
    """What /v1/models shows: the fixed models (the mock), the aliases, and models named in
    config."""
    fixed = [p for p in config.providers.values() if registry.spec(p.kind).fixed_models]
    names = [f"{p.name}/{m}" for p in fixed for m in p.models]
    names += list(config.aliases)
    for provider in config.providers.values():
        if provider not in fixed:
            names += [f"{provider.name}/{m}" for m in provider.models]
    return list(dict.fromkeys(names))
