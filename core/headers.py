"""Which upstream response headers reach the client: an allowlist, so cookies and account
identifiers (``openai-organization``, ``openai-project``, ``anthropic-organization-id``) never do.
The common names are here; each kind adds its own in the registry. Bodies are decoded on the way
(transports undo gzip), so length and encoding are never copied."""

from __future__ import annotations

from collections.abc import Mapping

from . import registry

_COMMON = frozenset(
    {
        "content-type",
        "content-disposition",
        "cache-control",
        "retry-after",
        "retry-after-ms",
        "x-request-id",
    }
)
_COMMON_PREFIXES = ("x-ratelimit-",)


def forwardable(name: str) -> bool:
    """Whether the upstream response header ``name`` (lower case) may reach the client."""
    return (
        name in _COMMON
        or name in registry.RESPONSE_HEADERS
        or name.startswith(_COMMON_PREFIXES)
        or name.startswith(registry.RESPONSE_HEADER_PREFIXES)
    )


def filter_response_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """The upstream headers a client may see, names lower-cased."""
    return [(k, v) for k, v in headers.items() if forwardable(k.lower())]
