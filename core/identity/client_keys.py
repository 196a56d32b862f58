"""Client keys for server-to-server callers: ``EDGERELAY_CLIENT_KEYS`` entries and
``[clients.<name>]`` tables, each a key or ``sha256:<hex>`` of one (so the secret itself need not
sit in the configuration).

A presented key is hashed once and compared with every configured digest in constant time (no
early exit), so timing tells nothing about how close a guess came. The client id is a short
prefix of the digest: stable, and no help in recovering a high-entropy key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import NamedTuple

from ..config import ConfigError

ID_HEX_DIGITS = 12


class ClientKey(NamedTuple):
    digest: bytes  # sha256 of the key
    policy: str


def parse_key_entry(entry: str, setting: str) -> bytes:
    """The sha256 digest a configured entry stands for."""
    entry = entry.strip()
    if entry.startswith("sha256:"):
        hexdigits = entry[len("sha256:") :].strip().lower()
        try:
            digest = bytes.fromhex(hexdigits)
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise ConfigError(setting, "a sha256: entry must be 64 hexadecimal digits")
        return digest
    if len(entry) < 16:
        # Never the value in the message: it is a secret.
        raise ConfigError(setting, "a client key must be at least 16 characters")
    return hashlib.sha256(entry.encode()).digest()


def key_id(digest: bytes) -> str:
    return digest.hex()[:ID_HEX_DIGITS]


class ClientKeys:
    def __init__(self, keys: Iterable[ClientKey]) -> None:
        self._keys = tuple(keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def match(self, presented: str) -> ClientKey | None:
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        found = None
        for key in self._keys:
            if hmac.compare_digest(digest, key.digest) and found is None:
                found = key
        return found
