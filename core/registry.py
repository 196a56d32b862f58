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

from importlib import import_module
from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    from .config import ProviderConfig
    from .providers.base import Provider

KeyRequired = Literal["always", "at_default_url", "never"]


class ModelFacts(NamedTuple):
    """What one family of a provider's models accepts, for the names ``pattern`` matches
    (``fnmatch`` style: ``claude-opus-4-7*``). Filled in by the provider's entry."""

    pattern: str
    # Anthropic: "adaptive", "budget" or "both"; Gemini: "budget" (thinkingBudget) or "level"
    # (thinkingLevel).
    thinking: str
    # Whether thinking can be switched off (Anthropic ``disabled``, Gemini budget 0).
    can_disable: bool = True
    # The effort levels the model takes, lowest first (Anthropic output_config.effort, Gemini
    # thinkingLevel); empty for budget-only models.
    efforts: tuple[str, ...] = ()
    # Gemini: function calls of the current turn must carry a thought signature.
    signatures: bool = False


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
    global RESPONSE_HEADERS, RESPONSE_HEADER_PREFIXES
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
        found = _PROVIDERS[kind] = import_module(module, __package__)  # type: ignore[assignment]
    return found


def key_headers(provider: ProviderConfig) -> dict[str, str]:
    """The gateway's key for ``provider``, in the header its kind takes it in (none if unset)."""
    if not provider.api_key:
        return {}
    header, template = _SPECS[provider.kind].key_header
    return {header: template.format(provider.api_key)}


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
    )
)
