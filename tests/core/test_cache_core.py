"""The response cache's sans-IO parts: settings, the plan per request, keys and namespaces,
recording, assembly, replay, the memory store. Synchronous (also run inside Pyodide)."""

import json

import pytest

from edgerelay.core import ConfigError, GatewayError, load_config
from edgerelay.core.cache import (
    CacheSettings,
    Entry,
    MemoryCacheStore,
    PolicyCache,
    Recording,
    cache_key,
    canonical,
    json_answer,
    namespace_for,
    plan_request,
    sse_events,
)
from edgerelay.core.cache.assemble import Assembler
from tests.support.cache_wire import DONE, answer, chunk, text_of_chunks, usage_chunk
from tests.support.drive import drive

ON = CacheSettings(mode="on")
BODY = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}


def plan(settings=ON, headers=None, body=BODY, policy="default", model="gpt-4.1-mini"):
    return plan_request(settings, headers or {}, body, policy, model)


# --- settings


def test_settings_default_off_and_from_env_and_toml():
    assert load_config({}).cache == CacheSettings()
    assert not CacheSettings().enabled
    config = load_config(
        {
            "EDGERELAY_CACHE": "opt-in",
            "EDGERELAY_CACHE_TTL": "120",
            "EDGERELAY_CONFIG": (
                "[cache]\nttl_min = 60\nttl_max = 600\nmax_bytes = 1000\n"
                '[cache.policies.paid]\nmode = "on"\nshared = true\n'
                '[cache.aliases]\nfast = "off"\n'
            ),
        }
    )
    cache = config.cache
    assert (cache.mode, cache.ttl, cache.ttl_min, cache.ttl_max, cache.max_bytes) == (
        "opt-in",
        120,
        60,
        600,
        1000,
    )
    assert cache.policies == {"paid": PolicyCache("on", True)}
    assert cache.mode_for("paid", "gpt") == "on"
    assert cache.mode_for("paid", "fast") == "off"  # the alias wins over the policy
    assert cache.mode_for("default", "gpt") == "opt-in"
    assert CacheSettings(policies={"p": PolicyCache("on")}).enabled


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"EDGERELAY_CACHE": "always"}, "EDGERELAY_CACHE"),
        ({"EDGERELAY_CACHE_TTL": "soon"}, "EDGERELAY_CACHE_TTL"),
        ({"EDGERELAY_CACHE_TTL": "10"}, "EDGERELAY_CACHE_TTL"),  # below the minimum
        (
            {"EDGERELAY_CACHE_TTL_MIN": "900", "EDGERELAY_CACHE_TTL_MAX": "60"},
            "EDGERELAY_CACHE_TTL_MIN",
        ),
        ({"EDGERELAY_CACHE_MAX_BYTES": "-1"}, "EDGERELAY_CACHE_MAX_BYTES"),
        ({"EDGERELAY_CONFIG": "[cache]\ncolour = 1"}, "EDGERELAY_CONFIG.cache"),
        (
            {"EDGERELAY_CONFIG": '[cache.policies.p]\nshared = "yes"'},
            "EDGERELAY_CONFIG.cache.policies.p.shared",
        ),
        (
            {"EDGERELAY_CONFIG": '[cache.aliases]\nfast = "sometimes"'},
            "EDGERELAY_CONFIG.cache.aliases.fast",
        ),
    ],
)
def test_bad_settings_are_named(env, setting):
    with pytest.raises(ConfigError) as caught:
        load_config(env)
    assert caught.value.setting == setting


def test_the_admin_key_is_a_redacted_secret():
    from edgerelay.core.redact import configured_secrets

    config = load_config({"EDGERELAY_ADMIN_KEY": "admin-key-canary-123"})
    assert "admin-key-canary-123" in configured_secrets(config)


# --- the plan


def test_no_plan_when_nothing_can_be_cached():
    assert plan(CacheSettings()) is None
    assert plan(CacheSettings(), {"x-edgerelay-cache": "on"}) is None


def test_on_looks_up_and_stores_with_the_default_ttl():
    got = plan()
    assert (got.status, got.lookup, got.store, got.ttl) == ("MISS", True, True, 3600)


def test_opt_in_needs_the_header():
    settings = CacheSettings(mode="opt-in")
    assert plan(settings).status == "BYPASS"
    assert plan(settings, {"x-edgerelay-cache": "on"}).status == "MISS"
    assert plan(settings, {"x-edgerelay-cache": "refresh"}).status == "REFRESH"


def test_a_request_can_only_narrow():
    assert (
        plan(CacheSettings(mode="on", policies={"p": PolicyCache("off")}), policy="p").status
        == "BYPASS"
    )
    assert plan(headers={"x-edgerelay-cache": "off"}).status == "BYPASS"
    refresh = plan(headers={"x-edgerelay-cache": "refresh"})
    assert (refresh.status, refresh.lookup, refresh.store) == ("REFRESH", False, True)
    no_cache = plan(headers={"cache-control": "no-cache"})
    assert (no_cache.lookup, no_cache.store) == (False, True)
    no_store = plan(headers={"cache-control": "max-age=0, no-store"})
    assert (no_store.status, no_store.lookup, no_store.store) == ("MISS", True, False)
    assert plan(headers={"cache-control": "no-cache, no-store"}).status == "BYPASS"


def test_only_one_choice_is_cached_and_temperature_does_not_matter():
    assert plan(body={**BODY, "n": 2}).status == "BYPASS"
    assert plan(body={**BODY, "n": True}).status == "BYPASS"
    assert plan(body={**BODY, "n": 1}).status == "MISS"
    assert plan(body={**BODY, "temperature": 1.2}).status == "MISS"


def test_per_request_ttl_within_bounds_else_400():
    assert plan(headers={"x-edgerelay-cache-ttl": "120"}).ttl == 120
    for bad in ("5", "999999", "1.5", "soon", ""):
        with pytest.raises(GatewayError) as caught:
            plan(headers={"x-edgerelay-cache-ttl": bad})
        assert caught.value.status == 400
        assert caught.value.param == "x-edgerelay-cache-ttl"


def test_a_bad_cache_header_is_a_400():
    with pytest.raises(GatewayError) as caught:
        plan(headers={"x-edgerelay-cache": "maybe"})
    assert (caught.value.status, caught.value.param) == (400, "x-edgerelay-cache")


# --- keys and namespaces


def test_key_ignores_delivery_fields_and_key_order():
    key = cache_key("/v1/chat/completions", "m", BODY, "shared", (0, 0))
    same = {
        "messages": BODY["messages"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u1",
        "safety_identifier": "s",
        "metadata": {"a": 1},
        "store": False,
        "model": "gpt-4.1-mini",
    }
    assert cache_key("/v1/chat/completions", "m", same, "shared", (0, 0)) == key
    assert (
        canonical(BODY) == b'{"messages":[{"content":"hi","role":"user"}],"model":"gpt-4.1-mini"}'
    )
    assert len(key) == 64


def test_key_changes_with_anything_that_changes_the_answer():
    key = cache_key("/v1/chat/completions", "m", BODY, "shared", (0, 0))
    others = [
        cache_key("/v1/responses", "m", BODY, "shared", (0, 0)),
        cache_key("/v1/chat/completions", "alias", BODY, "shared", (0, 0)),
        cache_key("/v1/chat/completions", "m", {**BODY, "temperature": 0}, "shared", (0, 0)),
        cache_key("/v1/chat/completions", "m", BODY, "client:key:a", (0, 0)),
        cache_key("/v1/chat/completions", "m", BODY, "shared", (1, 0)),
        cache_key("/v1/chat/completions", "m", BODY, "shared", (0, 1)),
    ]
    assert key not in others and len(set(others)) == len(others)


def test_namespaces():
    settings = CacheSettings(mode="on", policies={"team": PolicyCache(shared=True)})
    assert namespace_for(settings, "jwt:alice", "default") == "client:jwt:alice"
    assert namespace_for(settings, "jwt:bob", "default") == "client:jwt:bob"
    assert namespace_for(settings, "session:s1", "anonymous") == "policy:anonymous"
    assert namespace_for(settings, "jwt:carol", "team") == "policy:team"
    private = CacheSettings(policies={"anonymous": PolicyCache(shared=False)})
    assert namespace_for(private, "session:s1", "anonymous") == "client:session:s1"
    assert namespace_for(settings, None, None) == "shared"


# --- assembly, recording, replay


def test_assembles_text_tool_calls_and_usage():
    assembler = Assembler()
    stream = [
        {
            "id": "c1",
            "created": 5,
            "model": "m",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
        },
        {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"choices": [{"index": 0, "delta": {"content": "lo"}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "t1",
                                "type": "function",
                                "function": {"name": "get", "arguments": '{"a"'},
                            }
                        ]
                    },
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]},
                }
            ]
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}},
    ]
    for item in stream:
        assembler.add(item)
    assert assembler.finished
    out = assembler.completion()
    assert out["id"] == "c1" and out["object"] == "chat.completion" and out["created"] == 5
    message = out["choices"][0]["message"]
    assert message["content"] == "Hello"
    assert message["tool_calls"] == [
        {"id": "t1", "type": "function", "function": {"name": "get", "arguments": '{"a":1}'}}
    ]
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert out["usage"]["total_tokens"] == 3


def record(batches, max_bytes=1 << 20, ended="complete"):
    recording = Recording(max_bytes)
    for batch in batches:
        recording.feed(batch)
    return recording.entry("k" * 64, "shared", 100.0, 60, ended)


def test_a_complete_answer_is_recorded_and_length_is_complete():
    assert record(answer()) is not None
    assert record(answer(finish="length")) is not None


def test_errored_cut_and_oversized_answers_are_not_recorded():
    whole = answer()
    assert record(whole, ended="broken") is None
    assert record(whole, ended="cancelled") is None
    assert record(whole, ended="cut") is None
    assert record(whole[:-1], ended="complete") is None  # no [DONE]
    no_finish = [whole[0], whole[1], usage_chunk(), DONE]
    assert record(no_finish) is None
    errored = [whole[0], b'data: {"error":{"message":"overloaded"}}\n\n', DONE]
    assert record(errored) is None
    assert record(whole, max_bytes=sum(map(len, whole)) - 1) is None
    assert record(whole, max_bytes=sum(map(len, whole))) is not None


def test_replay_as_sse_keeps_the_split_and_drops_usage_unless_asked():
    batches = answer(("Hel", "lo", " there"))
    entry = record(batches)
    asked = sse_events(entry, include_usage=True)
    assert list(asked) == batches
    plain = sse_events(entry, include_usage=False)
    assert text_of_chunks(plain) == ["Hel", "lo", " there"]
    assert plain[-1] == DONE
    joined = b"".join(plain)
    assert b'"usage"' not in joined  # no usage chunk, no "usage": null members
    assert joined == b"".join(answer(("Hel", "lo", " there"), usage=False))


def test_replay_as_json():
    body = json.loads(json_answer(answer(("Hel", "lo"), finish="length")))
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello"}
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_entries_travel_as_bytes_unchanged():
    entry = record(answer(("é", "漢字", "\u2028")))
    assert Entry.decode(entry.encode()) == entry
    assert Entry.decode(b"something else") is None
    assert Entry.decode(entry.encode()[:-3]) is None  # truncated


# --- the memory store


def entry_for(key, namespace="shared", created=100.0, ttl=60, size_words=3):
    return Entry.of(key, namespace, created, created + ttl, tuple(answer(("w",) * size_words)))


def test_memory_store_expiry_on_the_injected_clock():
    store = MemoryCacheStore(1 << 20)
    entry = entry_for("a" * 64)
    drive(store.put(entry, 100.0))
    assert drive(store.get("a" * 64, 159.9)) == entry
    assert drive(store.get("a" * 64, 160.0)) is None
    assert drive(store.stats())["entries"] == 0


def test_memory_store_is_bounded_in_bytes_least_recently_used_out():
    one = entry_for("a" * 64)
    store = MemoryCacheStore(one.size * 2)
    drive(store.put(one, 100.0))
    drive(store.put(entry_for("b" * 64), 100.0))
    drive(store.get("a" * 64, 100.0))  # a is now the most recently used
    drive(store.put(entry_for("c" * 64), 100.0))
    assert drive(store.get("b" * 64, 100.0)) is None
    assert drive(store.get("a" * 64, 100.0)) is not None
    assert store.bytes <= store.max_bytes
    drive(store.put(entry_for("d" * 64, size_words=5000), 100.0))  # larger than the bound
    assert drive(store.get("d" * 64, 100.0)) is None


def test_memory_store_invalidation_bumps_generations():
    store = MemoryCacheStore(1 << 20)
    drive(store.put(entry_for("a" * 64, "client:x"), 100.0))
    drive(store.put(entry_for("b" * 64, "client:y"), 100.0))
    drive(store.invalidate("client:x"))
    assert drive(store.generations("client:x")) == (0, 1)
    assert drive(store.generations("client:y")) == (0, 0)
    assert drive(store.get("a" * 64, 100.0)) is None
    assert drive(store.get("b" * 64, 100.0)) is not None
    drive(store.invalidate(None))
    assert drive(store.generations("client:y")) == (1, 0)
    assert drive(store.stats())["entries"] == 0


def test_memory_store_stats():
    store = MemoryCacheStore(1 << 20)
    for hit in (True, False, False, True, True):
        drive(store.count(hit))
    stats = drive(store.stats())
    assert (stats["hits"], stats["misses"], stats["hit_rate"]) == (3, 2, 0.6)


def test_chunk_helper_shape():
    assert chunk({"content": "x"}).startswith(b'data: {"id":"chatcmpl-up"')
