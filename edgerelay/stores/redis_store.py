"""The limit store on Redis: one Lua script per admission (one round trip), run atomically by
Redis, so any number of gateway processes share one exact limit.

Buckets are plain integer keys with a TTL; a slot set is a sorted set of slot ids scored by when
they expire, so a crashed instance's streams stop counting on their own. Keys carry the client
key in a hash tag (``{…}``), so one client's keys share a Redis Cluster slot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import redis.asyncio as aioredis

from edgerelay.core.limits import Adjustment, Counter, Slot, StoreAnswer, StoreUnavailable
from edgerelay.stores.redis_client import (
    FAILURES,
    Connections,
    Script,
    bounded,
    client_for,
    describe,
)

PREFIX = "edgerelay:"

# KEYS: every counter's bucket ids in order, then every slot set id.
# ARGV: now, #counters, #slots; per counter: limit, amount, ttl_ms, #buckets, weights...;
#       per slot: limit, slot id, expires_at, ttl_ms.
# Returns one flat array (nested tables cost Redis more to convert): admitted (1 or 0), then
# every counter's bucket values in order, then every slot set's open slots.
# A taken amount is written with SET … PX from the value just read: one command, not INCRBY and
# PEXPIRE (the script is atomic, so nothing changed it meanwhile).
_ADMIT = """
local now = tonumber(ARGV[1])
local nc, ns = tonumber(ARGV[2]), tonumber(ARGV[3])
local a, k = 4, 1
local ok = 1
local out = {0}
local first, seen, amounts, ttls = {}, {}, {}, {}
for i = 1, nc do
  local limit, amount = tonumber(ARGV[a]), tonumber(ARGV[a+1])
  local nb = tonumber(ARGV[a+3])
  first[i], amounts[i], ttls[i] = k, amount, ARGV[a+2]
  a = a + 4
  local used = 0
  for j = 1, nb do
    local v = tonumber(redis.call('GET', KEYS[k]) or '0')
    used = used + tonumber(ARGV[a]) * v
    out[#out+1] = v
    if j == 1 then seen[i] = v end
    a, k = a + 1, k + 1
  end
  if used + amount > limit then ok = 0 end
end
local slots = {}
for i = 1, ns do
  local set = KEYS[k]
  k = k + 1
  local limit = tonumber(ARGV[a])
  redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
  local n = redis.call('ZCARD', set)
  out[#out+1] = n
  if n >= limit then ok = 0 end
  slots[i] = {set, ARGV[a+1], ARGV[a+2], ARGV[a+3]}
  a = a + 4
end
if ok == 1 then
  for i = 1, nc do
    if amounts[i] ~= 0 then
      redis.call('SET', KEYS[first[i]], string.format('%d', seen[i] + amounts[i]), 'PX', ttls[i])
    end
  end
  for _, s in ipairs(slots) do
    redis.call('ZADD', s[1], s[3], s[2])
    redis.call('PEXPIRE', s[1], s[4])
  end
end
out[1] = ok
return out
"""

# KEYS: bucket ids; ARGV: per key delta, ttl_ms. Never below zero.
_ADJUST = """
for i = 1, #KEYS do
  local v = redis.call('INCRBY', KEYS[i], ARGV[2*i-1])
  if v < 0 then redis.call('SET', KEYS[i], 0) end
  redis.call('PEXPIRE', KEYS[i], ARGV[2*i])
end
return 1
"""


# An answer is over: adjust and release in one round trip.
# KEYS: bucket ids, then slot set ids; ARGV: #buckets, then per bucket delta, ttl_ms, then per
# slot set its slot id.
_SETTLE = """
local n = tonumber(ARGV[1])
for i = 1, n do
  local v = redis.call('INCRBY', KEYS[i], ARGV[2*i])
  if v < 0 then redis.call('SET', KEYS[i], 0) end
  redis.call('PEXPIRE', KEYS[i], ARGV[2*i+1])
end
for i = n + 1, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[n + i + 1])
end
return 1
"""


def _tagged(client_key: str, rest: str) -> str:
    return f"{PREFIX}{{{client_key}}}{rest}"


def _ttl_ms(expires_at: float, now: float) -> str:
    # Relative TTLs: Redis's clock and ours need not agree.
    return str(max(1, math.ceil((expires_at - now) * 1000)))


class RedisStore:
    """``LimitStore`` over redis-py's asyncio client. Build it once per process (a Lambda's warm
    invocations reuse its connections)."""

    def __init__(self, client: aioredis.Redis, timeout: float = 1.0) -> None:
        self.client = client
        self.timeout = timeout  # seconds for one call, round trip included
        connections = Connections(client)
        self._admit = Script(client, _ADMIT, connections)
        self._adjust = Script(client, _ADJUST, connections)
        self._settle = Script(client, _SETTLE, connections)

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 1.0) -> RedisStore:
        return cls(client_for(url, timeout), timeout)

    async def admit(
        self, counters: Sequence[Counter], slots: Sequence[Slot], now: float
    ) -> StoreAnswer:
        keys: list[str] = []
        args: list = [repr(now), len(counters), len(slots)]
        ttls: dict[float, str] = {}  # counters of one window share their expiry
        for key, name, limit, amount, buckets, expires_at in counters:
            ttl = ttls.get(expires_at)
            if ttl is None:
                ttl = ttls[expires_at] = _ttl_ms(expires_at, now)
            args += (limit, amount, ttl, len(buckets))
            tagged = _tagged(key, f"|{name}|")
            for bucket, weight in buckets:
                keys.append(f"{tagged}{bucket}")
                args.append("1" if weight == 1.0 else repr(weight))
        for s in slots:
            keys.append(_tagged(s.key, "|concurrent_streams"))
            args += [s.limit, s.slot_id, repr(s.expires_at), _ttl_ms(s.expires_at, now)]
        try:
            out = await bounded(self._admit(keys, args), self.timeout)
            at = 1
            counts = []
            for c in counters:
                end = at + len(c.buckets)
                counts.append(tuple(float(v) for v in out[at:end]))
                at = end
            open_slots = tuple(int(n) for n in out[at:])
            if len(open_slots) != len(slots):
                raise ValueError("an answer of the wrong length")
        except FAILURES as exc:
            raise StoreUnavailable(describe(exc)) from None
        return StoreAnswer(out[0] == 1, tuple(counts), open_slots)

    async def adjust(self, adjustments: Sequence[Adjustment], now: float) -> None:
        if not adjustments:
            return
        keys = [_adjusted_key(a.bucket_id) for a in adjustments]
        args: list = []
        for a in adjustments:
            args += [a.delta, _ttl_ms(a.expires_at, now)]
        try:
            await bounded(self._adjust(keys, args), self.timeout)
        except FAILURES as exc:
            raise StoreUnavailable(describe(exc)) from None

    async def release(self, slots: Sequence[Slot]) -> None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for s in slots:
                    pipe.zrem(_tagged(s.key, "|concurrent_streams"), s.slot_id)
                await bounded(pipe.execute(), self.timeout)
        except FAILURES as exc:
            raise StoreUnavailable(describe(exc)) from None

    async def settle(
        self, adjustments: Sequence[Adjustment], slots: Sequence[Slot], now: float
    ) -> None:
        """``adjust`` and ``release`` in one script: one round trip once an answer is over."""
        keys = [_adjusted_key(a.bucket_id) for a in adjustments]
        args: list = [len(adjustments)]
        for a in adjustments:
            args += [a.delta, _ttl_ms(a.expires_at, now)]
        for s in slots:
            keys.append(_tagged(s.key, "|concurrent_streams"))
            args.append(s.slot_id)
        try:
            await bounded(self._settle(keys, args), self.timeout)
        except FAILURES as exc:
            raise StoreUnavailable(describe(exc)) from None

    async def aclose(self) -> None:
        await self.client.aclose()


def _adjusted_key(bucket_id: str) -> str:
    # Counter.bucket_id is "<client key>|<name>|<bucket>"; the client key may hold "|" itself
    # only at its start, so split from the right.
    client_key, name, bucket = bucket_id.rsplit("|", 2)
    return _tagged(client_key, f"|{name}|{bucket}")
