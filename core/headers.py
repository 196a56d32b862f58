"""Which upstream response headers reach the client: an allowlist, so cookies and account
identifiers (``openai-organization``, ``openai-project``, ``anthropic-organization-id``) never do.
Bodies are decoded on the way (transports undo gzip), so length and encoding are never copied."""

from __future__ import annotations

from collections.abc import Mapping

_EXACT = frozenset(
    {
        "content-type",
        "content-disposition",
        "cache-control",
        "retry-after",
        "retry-after-ms",
        "x-request-id",
        "request-id",
        "openai-processing-ms",
        "openai-version",
        "x-goog-request-id",
    }
)
_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")


def forwardable(name: str) -> bool:
    return name in _EXACT or name.startswith(_PREFIXES)


def filter_response_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """The upstream headers a client may see, names lower-cased."""
    return [(k, v) for k, v in headers.items() if forwardable(k.lower())]
