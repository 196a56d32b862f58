"""Whose counters a request is charged to.

A credential's client id is its key (ids carry their kind: ``jwt:…``, ``key:…``, ``session:…``,
so kinds never collide). An anonymous caller is keyed by IP address — an IPv6 address by its
/64, since one host usually holds a whole /64 — and a Turnstile session by its id *as well*, so a
visitor who fetches a new session keeps the budget of their address.
"""

from __future__ import annotations

import ipaddress

# Addresses seen lately and their keys: parsing an address is a large part of what admitting a
# request costs, and the same callers come back. Bounded: cleared when full.
_SEEN: dict[str | None, str] = {}
_SEEN_MAX = 4096


def ip_key(address: str | None) -> str:
    """``ip:<address>``, IPv6 reduced to its /64 (an IPv4-mapped IPv6 address as IPv4)."""
    key = _SEEN.get(address)
    if key is None:
        key = _ip_key(address)
        if len(_SEEN) >= _SEEN_MAX:
            _SEEN.clear()
        _SEEN[address] = key
    return key


def _ip_key(address: str | None) -> str:
    if not address:
        return "ip:unknown"
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return "ip:unknown"  # the adapters hand over a platform value; never trust its shape
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"ip:{ip.ipv4_mapped}"
        network = ipaddress.IPv6Network((int(ip) >> 64 << 64, 64))
        return f"ip:{network.compressed}"
    return f"ip:{ip}"


def client_keys(client_id: str | None, client_ip: str | None) -> tuple[str, ...]:
    """The keys a request is limited by: the credential's client id; with no credential the
    address; for a session both the session and the address."""
    if client_id is None or client_id == "anonymous":
        return (ip_key(client_ip),)
    if client_id.startswith("session:"):
        return (client_id, ip_key(client_ip))
    return (client_id,)
