"""Cache keys: which requests are the same request, and whose entries they are.

A key is the sha256 of the route, the model as the client named it (an alias, or a model
name) and the canonical JSON of the body after policy changes (sorted keys, no insignificant
whitespace), leaving out the fields that do not change the answer. It also covers the
namespace (whose entries: one client's, or a shared policy's) and the two generation numbers
of that namespace (everything's, and the namespace's own): invalidation bumps one, and every
older key is then out of reach, which works on stores that cannot delete by prefix (KV).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from .settings import CacheSettings

# Fields that do not change the answer: how it is delivered, and who is asking (the namespace
# already separates clients).
IGNORED_FIELDS = frozenset(
    {"stream", "stream_options", "user", "safety_identifier", "metadata", "store"}
)
SHARED_NAMESPACE = "shared"


def canonical(body: Mapping[str, Any]) -> bytes:
    """The body as sorted, compact JSON without the fields that do not change the answer."""
    kept = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


def namespace_for(settings: CacheSettings, client_id: str | None, policy: str | None) -> str:
    """Whose entries: the client's own (``client:<id>``), or everyone's under a shared policy
    (``policy:<name>``; ``anonymous`` shares by default). No identity at all: one namespace."""
    if client_id is None:
        return SHARED_NAMESPACE
    if settings.shared(policy):
        return f"policy:{policy}"
    return f"client:{client_id}"


def cache_key(
    route: str, model: str, body: Mapping[str, Any], namespace: str, generations: tuple[int, int]
) -> str:
    """The hex sha256 naming one entry (``x-edgerelay-cache-key``)."""
    head = f"{route}\n{model}\n{namespace}\n{generations[0]}\n{generations[1]}\n"
    return hashlib.sha256(head.encode() + canonical(body)).hexdigest()


def is_key(text: str) -> bool:
    """Whether ``text`` could be a key (admin routes refuse anything else with a 400)."""
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)
