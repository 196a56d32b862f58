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
from redis.exceptions import RedisError

from edgerelay.core.limits import Adjustment, Counter, Slot, StoreAnswer, StoreUnavailable

PREFIX = "edgerelay:"

# KEYS: every counter's bucket ids in order, then every slot set id.
# ARGV: now, #counters, #slots; per counter: limit, amount, ttl_ms, #buckets, weights...;
#       per slot: limit, slot id, expires_at, ttl_ms.
_ADMIT = """
local now = tonumber(ARGV[1])
local nc, ns = tonumber(ARGV[2]), tonumber(ARGV[3])
local a, k = 4, 1
local ok = true
local counts, open, writes = {}, {}, {}
for i = 1, nc do
  local limit, amount = tonumber(ARGV[a]), tonumber(ARGV[a+1])
  local ttl, nb = ARGV[a+2], tonumber(ARGV[a+3])
  a = a + 4
  local used, vals = 0, {}
  for j = 1, nb do
    local v = tonumber(redis.call('GET', KEYS[k]) or '0')
    used = used + tonumber(ARGV[a]) * v
    vals[j] = v
    if j == 1 and amount ~= 0 then writes[#writes+1] = {KEYS[k], amount, ttl} end
    a, k = a + 1, k + 1
  end
  if used + amount > limit then ok = false end
  counts[i] = vals
end
local slots = {}
for i = 1, ns do
  local set = KEYS[k]
  k = k + 1
  local limit, id, exp, ttl = tonumber(ARGV[a]), ARGV[a+1], ARGV[a+2], ARGV[a+3]
  a = a + 4
  redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
  local n = redis.call('ZCARD', set)
  open[i] = n
  if n >= limit then ok = false end
  slots[i] = {set, id, exp, ttl}
end
if ok then
  for _, w in ipairs(writes) do
    redis.call('INCRBY', w[1], w[2])
    redis.call('PEXPIRE', w[1], w[3])
  end
  for _, s in ipairs(slots) do
    redis.call('ZADD', s[1], s[3], s[2])
    redis.call('PEXPIRE', s[1], s[4])
  end
end
return {ok and 1 or 0, counts, open}
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


def _bucket_key(counter: Counter, bucket: int) -> str:
    return _tagged(counter.key, f"|{counter.name}|{bucket}")


def _ttl_ms(expires_at: float, now: float) -> str:
    # Relative TTLs: Redis's clock and ours need not agree.
    return str(max(1, math.ceil((expires_at - now) * 1000)))


class RedisStore:
    """``LimitStore`` over redis-py's asyncio client. Build it once per process (a Lambda's warm
    invocations reuse its connections)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._admit = client.register_script(_ADMIT)
        self._adjust = client.register_script(_ADJUST)
        self._settle = client.register_script(_SETTLE)

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 1.0) -> RedisStore:
        client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
            # Limits decide whether to spend money: fail at once, do not retry behind our back.
            retry_on_timeout=False,
        )
        return cls(client)

    async def admit(
        self, counters: Sequence[Counter], slots: Sequence[Slot], now: float
    ) -> StoreAnswer:
        keys: list[str] = []
        args: list = [repr(now), len(counters), len(slots)]
        for c in counters:
            args += [c.limit, c.amount, _ttl_ms(c.expires_at, now), len(c.buckets)]
            for bucket, weight in c.buckets:
                keys.append(_bucket_key(c, bucket))
                args.append(repr(weight))
        for s in slots:
            keys.append(_tagged(s.key, "|concurrent_streams"))
            args += [s.limit, s.slot_id, repr(s.expires_at), _ttl_ms(s.expires_at, now)]
        try:
            ok, counts, open_slots = await self._admit(keys=keys, args=args)
        except (RedisError, OSError, ValueError) as exc:
            raise StoreUnavailable(_describe(exc)) from None
        return StoreAnswer(
            bool(ok),
            tuple(tuple(float(v) for v in values) for values in counts),
            tuple(int(n) for n in open_slots),
        )

    async def adjust(self, adjustments: Sequence[Adjustment], now: float) -> None:
        if not adjustments:
            return
        keys = [_adjusted_key(a.bucket_id) for a in adjustments]
        args: list = []
        for a in adjustments:
            args += [a.delta, _ttl_ms(a.expires_at, now)]
        try:
            await self._adjust(keys=keys, args=args)
        except (RedisError, OSError, ValueError) as exc:
            raise StoreUnavailable(_describe(exc)) from None

    async def release(self, slots: Sequence[Slot]) -> None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for s in slots:
                    pipe.zrem(_tagged(s.key, "|concurrent_streams"), s.slot_id)
                await pipe.execute()
        except (RedisError, OSError, ValueError) as exc:
            raise StoreUnavailable(_describe(exc)) from None

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
            await self._settle(keys=keys, args=args)
        except (RedisError, OSError, ValueError) as exc:
            raise StoreUnavailable(_describe(exc)) from None

    async def aclose(self) -> None:
        await self.client.aclose()


def _adjusted_key(bucket_id: str) -> str:
    # Counter.bucket_id is "<client key>|<name>|<bucket>"; the client key may hold "|" itself
    # only at its start, so split from the right.
    client_key, name, bucket = bucket_id.rsplit("|", 2)
    return _tagged(client_key, f"|{name}|{bucket}")


def _describe(exc: Exception) -> str:
    # The class name and message say what failed; never the URL, which may hold a password.
    text = str(exc).split(" to ", 1)[0] if "Error" in type(exc).__name__ else ""
    return f"Redis: {type(exc).__name__}" + (f": {text}" if text and "@" not in text else "")
