"""The provider registry: everything the gateway knows about a kind of provider, as data.

One ``ProviderSpec`` per kind says which environment variables configure it, its default base
URL, which bare model names go to it, what its passthrough route allows, how it takes the
gateway's key, which of its response headers a client may see, its error shape, and the module
implementing the provider contract (``providers/base.py``). Config, routing, errors,
passthrough and headers read it; nothing else names a provider kind.

Adding a provider is one module implementing the contract plus one ``register(ProviderSpec(…))``.
The module is imported on first use: a Worker or Lambda cold start pays only for the providers
it actually calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from importlib import import_module
from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    from .config import ProviderConfig
    from .providers.base import Provider

KeyRequired = Literal["always", "at_default_url", "never"]


class ModelFacts(NamedTuple):
    """What one family of a provider's models accepts, for the names ``pattern`` matches
    (``fnmatch`` style, case-sensitive: ``claude-opus-4-7*``). docs/anthropic.md and
    docs/gemini.md show each row with its source."""

    pattern: str
    # Anthropic: "adaptive", "budget" or "both" (adaptive recommended, budget deprecated);
    # Gemini: "level" (thinkingLevel) or "budget" (thinkingBudget).
    thinking: str
    # Whether thinking can be switched off (Anthropic: no thinking / ``disabled``; Gemini: a
    # budget of 0).
    can_disable: bool = True
    # The levels the model takes, lowest first (Anthropic ``output_config.effort``, Gemini
    # ``thinkingLevel``); empty for budget models.
    efforts: tuple[str, ...] = ()
    # Gemini: function calls of the current turn must carry a thought signature.
    signatures: bool = False


THINKING_KINDS = frozenset({"adaptive", "budget", "both", "level"})


class ProviderSpec(NamedTuple):
    """One kind of provider, declared."""

    kind: str
    module: str  # implements the contract; relative to this package or absolute
    default_url: str = ""
    # Environment names, preferred first: the first one set is used; when none is, the last
    # is the one an error message names.
    key_envs: tuple[str, ...] = ()
    url_envs: tuple[str, ...] = ()
    key_required: KeyRequired = "always"
    # Configured from the environment under its kind's name at startup.
    builtin: bool = True
    # EDGERELAY_CONFIG may declare further providers of this kind.
    named: bool = True
    # Bare model names with one of these prefixes go to the builtin provider of this kind.
    bare_prefixes: tuple[str, ...] = ()
    # Model names this kind has, when it has a fixed list (the mock): others are 404.
    fixed_models: tuple[str, ...] = ()
    # The passthrough route: (method, path template) relative to the base URL; empty for none.
    allowlist: tuple[tuple[str, str], ...] = ()
    sdk_prefix: str = ""  # what the kind's SDK puts before an allowlisted path
    key_header: tuple[str, str] = ("authorization", "Bearer {}")  # (header, value template)
    # Request headers (besides the common ones) a passthrough forwards.
    forwarded_headers: frozenset[str] = frozenset()
    # Upstream response headers a client may see (besides the common ones), and prefixes.
    response_headers: frozenset[str] = frozenset()
    response_header_prefixes: tuple[str, ...] = ()
    error_shape: str = "openai"  # "openai", "anthropic" or "gemini" (errors.py)
    # Per-model facts, first match wins; ``newest`` for a name no pattern knows.
    models: tuple[ModelFacts, ...] = ()
    newest: ModelFacts | None = None


DEFAULT_KIND = "openai"  # a bare model name no prefix claims

_GEMINI_VERBS = (
    "generateContent",
    "streamGenerateContent",
    "countTokens",
    "embedContent",
    # what google-genai's embed_content() calls: a plain synchronous call, not a batch job
    "batchEmbedContents",
)

_SPECS: dict[str, ProviderSpec] = {}
_PROVIDERS: dict[str, Provider] = {}

# Every kind's response headers together, kept up to date by register(): read per response.
RESPONSE_HEADERS: frozenset[str] = frozenset()
RESPONSE_HEADER_PREFIXES: tuple[str, ...] = ()
# (bare-model prefixes, kind) of every kind that claims some, kept up to date likewise: read
# per request by routing.
BARE_PREFIXES: tuple[tuple[tuple[str, ...], str], ...] = ()


def register(spec: ProviderSpec) -> None:
    """Add (or replace) a kind of provider."""
    _SPECS[spec.kind] = spec
    _PROVIDERS.pop(spec.kind, None)
    _collect()


def unregister(kind: str) -> None:
    """Remove a kind (tests that register a kind of their own)."""
    _SPECS.pop(kind, None)
    _PROVIDERS.pop(kind, None)
    _collect()


def _collect() -> None:
    global RESPONSE_HEADERS, RESPONSE_HEADER_PREFIXES, BARE_PREFIXES
    BARE_PREFIXES = tuple((s.bare_prefixes, s.kind) for s in _SPECS.values() if s.bare_prefixes)
    RESPONSE_HEADERS = frozenset().union(*(s.response_headers for s in _SPECS.values()))
    RESPONSE_HEADER_PREFIXES = tuple(p for s in _SPECS.values() for p in s.response_header_prefixes)


def spec(kind: str) -> ProviderSpec:
    """The declared spec of ``kind`` (KeyError for a kind never registered)."""
    return _SPECS[kind]


def specs() -> tuple[ProviderSpec, ...]:
    """Every registered kind, in registration order."""
    return tuple(_SPECS.values())


def provider(kind: str) -> Provider:
    """The module implementing ``kind``'s contract, imported on first use."""
    found = _PROVIDERS.get(kind)
    if found is None:
        module = _SPECS[kind].module
        found = _PROVIDERS[kind] = import_module(module, __package__)
    return found


def model_facts(
    provider: ProviderConfig, model: str, overrides: Mapping[str, tuple[ModelFacts, ...]]
) -> ModelFacts | None:
    """What ``model`` of ``provider`` accepts: the first matching pattern of the overrides
    from EDGERELAY_CONFIG (under the provider's name, then its kind), then of the kind's own
    table, else the kind's newest family. None for a kind that declares no such facts."""
    spec = _SPECS[provider.kind]
    rows = (
        *overrides.get(provider.name, ()),
        *(overrides.get(provider.kind, ()) if provider.name != provider.kind else ()),
        *spec.models,
    )
    return next((row for row in rows if fnmatchcase(model, row.pattern)), spec.newest)


def key_headers(provider: ProviderConfig) -> dict[str, str]:
    """The gateway's key for ``provider``, in the header its kind takes it in (none if unset)."""
    if not provider.api_key:
        return {}
    header, template = _SPECS[provider.kind].key_header
    return {header: template.format(provider.api_key)}


# Claude models (docs/anthropic.md has each row's source).
_CLAUDE_ALL = ("low", "medium", "high", "xhigh", "max")
_CLAUDE_MAX = ("low", "medium", "high", "max")
_CLAUDE_BUDGET = (
    "claude-opus-4-5*",
    "claude-sonnet-4-5*",
    "claude-haiku-4-5*",
    "claude-opus-4-1*",
    "claude-opus-4-0*",
    "claude-opus-4-2*",  # claude-opus-4-20250514
    "claude-sonnet-4-0*",
    "claude-sonnet-4-2*",  # claude-sonnet-4-20250514
    "claude-3*",
)
CLAUDE_MODELS = (
    ModelFacts("claude-opus-4-7*", "adaptive", can_disable=False, efforts=_CLAUDE_ALL),
    ModelFacts("claude-mythos-preview*", "adaptive", can_disable=False, efforts=_CLAUDE_MAX),
    ModelFacts("claude-opus-4-6*", "both", efforts=_CLAUDE_MAX),
    ModelFacts("claude-sonnet-4-6*", "both", efforts=_CLAUDE_MAX),
    *(ModelFacts(pattern, "budget") for pattern in _CLAUDE_BUDGET),
)
# A name no pattern knows is a model newer than this table: the newest family's behaviour.
CLAUDE_NEWEST = ModelFacts("*", "adaptive", can_disable=False, efforts=_CLAUDE_MAX)

# Gemini models (docs/gemini.md has each row's source).
_GEMINI_LEVELS = ("MINIMAL", "LOW", "MEDIUM", "HIGH")
GEMINI_MODELS = (
    ModelFacts(
        "gemini-3-pro*", "level", can_disable=False, efforts=("LOW", "HIGH"), signatures=True
    ),
    ModelFacts(
        "gemini-3.1-pro*", "level", can_disable=False, efforts=("LOW", "HIGH"), signatures=True
    ),
    ModelFacts("gemini-3*", "level", can_disable=False, efforts=_GEMINI_LEVELS, signatures=True),
    ModelFacts("gemini-2.5-pro*", "budget", can_disable=False),
    ModelFacts("gemini-2*", "budget"),
    ModelFacts("gemini-1*", "budget"),
)
GEMINI_NEWEST = ModelFacts("*", "level", can_disable=False, efforts=_GEMINI_LEVELS, signatures=True)


register(
    ProviderSpec(
        kind="mock",
        module=".providers.mock",
        key_required="never",
        named=False,
        fixed_models=("echo",),
    )
)
register(
    ProviderSpec(
        kind="openai",
        module=".providers.openai",
        default_url="https://api.openai.com/v1",
        key_envs=("OPENAI_API_KEY",),
        url_envs=("OPENAI_BASE_URL",),
        # A local Ollama or vLLM needs no key; OpenAI itself does.
        key_required="at_default_url",
        allowlist=(
            ("POST", "chat/completions"),
            ("POST", "responses"),
            ("POST", "embeddings"),
            ("GET", "models"),
            ("GET", "models/{id}"),
        ),
        # OpenAI SDKs' base URL is …/openai/v1, matching the /v1 OPENAI_BASE_URL ends in.
        sdk_prefix="v1/",
        forwarded_headers=frozenset({"openai-beta"}),
        response_headers=frozenset({"openai-processing-ms", "openai-version"}),
    )
)
register(
    ProviderSpec(
        kind="anthropic",
        module=".providers.anthropic",
        default_url="https://api.anthropic.com",
        key_envs=("ANTHROPIC_API_KEY",),
        url_envs=("ANTHROPIC_BASE_URL",),
        bare_prefixes=("claude-",),
        allowlist=(
            ("POST", "v1/messages"),
            ("POST", "v1/messages/count_tokens"),
            ("GET", "v1/models"),
        ),
        key_header=("x-api-key", "{}"),
        forwarded_headers=frozenset({"anthropic-version", "anthropic-beta"}),
        response_headers=frozenset({"request-id"}),
        response_header_prefixes=("anthropic-ratelimit-",),
        error_shape="anthropic",
        models=CLAUDE_MODELS,
        newest=CLAUDE_NEWEST,
    )
)
register(
    ProviderSpec(
        kind="gemini",
        module=".providers.gemini",
        default_url="https://generativelanguage.googleapis.com",
        # google-genai prefers GOOGLE_API_KEY when both are set.
        key_envs=("GOOGLE_API_KEY", "GEMINI_API_KEY"),
        url_envs=("GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL"),
        bare_prefixes=("gemini-",),
        allowlist=tuple(
            route
            for version in ("v1beta", "v1")
            for route in (
                *(("POST", f"{version}/models/{{model}}:{verb}") for verb in _GEMINI_VERBS),
                ("GET", f"{version}/models"),
            )
        ),
        key_header=("x-goog-api-key", "{}"),
        forwarded_headers=frozenset({"x-goog-api-client"}),
        response_headers=frozenset({"x-goog-request-id"}),
        error_shape="gemini",
        models=GEMINI_MODELS,
        newest=GEMINI_NEWEST,
    )
)
