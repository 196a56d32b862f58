"""The Worker's CPU per stream event under Pyodide; run inside Pyodide by bench/worker_bench.mjs
(never on CPython: it needs ``js`` and the harness's loopback upstream).

Two kinds of figure, each against a baseline measured in the same run:

1. Core alone, synchronous (what one event costs the isolate's CPU, no event-loop turns):
   ``StreamObserver.feed`` per OpenAI chunk, against the same loop that only hands each chunk on;
   the Anthropic and Gemini translators' ``feed`` per upstream event (bench/translate_bench.py's
   streams).
2. End to end through the Worker's ``fetch`` as workerd calls it (tests/pyodide/workerd_call.py),
   the body read by JS: a passthrough stream of OpenAI chunks relayed zero copy (the bare relay:
   the upstream's own ReadableStream, no Python per chunk) against the same stream observed (the
   default: observed and idle-timed; and observed without the idle timer), and Anthropic and
   Gemini streams translated to OpenAI chunks, per upstream event.

Pyodide on Node has no JSPI, so nothing here uses ``run_until_complete``: the coroutines are
awaited from the top level of ``runPythonAsync``, and every end-to-end run checks the events
its client received, so a run that measured nothing fails instead of printing a figure.
"""

from __future__ import annotations

import importlib
import json
import statistics
import sys

import js

# edgerelay first, from the harness's package layout: translate_bench puts the repository at
# the front of sys.path, where edgerelay/ has no core/.
importlib.import_module("edgerelay.core")
sys.path[:0] = ["/repo/bench", "/repo/tests/pyodide"]

from translate_bench import anthropic_stream_events, gemini_stream_events  # noqa: E402
from workerd_call import UPSTREAM, call_fetch, make_env, make_request  # noqa: E402

from edgerelay.core.observer import IdleTimed, StreamObserver  # noqa: E402
from edgerelay.core.providers.anthropic_stream import AnthropicStream  # noqa: E402
from edgerelay.core.providers.base import ChatContext  # noqa: E402
from edgerelay.core.providers.gemini_stream import GeminiStream  # noqa: E402
from edgerelay.core.routing import Route  # noqa: E402

TEST = js.EDGERELAY_TEST
CHUNK = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,'
    b'"model":"gpt-4.1-mini","choices":[{"index":0,"delta":{"content":" word"},'
    b'"finish_reason":null}]}\n\n'
)


def now_us() -> float:
    return js.performance.now() * 1000.0


def _per_item(run, items: int, repeats: int) -> float:
    """Fastest of ``repeats`` runs of ``run()``, in µs per item."""
    best = None
    for _ in range(repeats):
        start = now_us()
        run()
        elapsed = now_us() - start
        best = elapsed if best is None else min(best, elapsed)
    return best / items


def core_figures(repeats: int) -> dict[str, float]:
    n = 20_000
    chunks = [CHUNK] * n

    def handed_on() -> None:  # the baseline: the same loop, each chunk handed on untouched
        out = []
        for chunk in chunks:
            out.append(chunk)

    def observed() -> None:
        observer = StreamObserver("chat", [IdleTimed()])
        out = []
        for chunk in chunks:
            out.append(observer.feed(chunk))
        out.append(observer.finish())

    check = StreamObserver("chat", [IdleTimed()])
    assert b"".join(check.feed(c) for c in chunks[:3]) == CHUNK * 3  # relays, byte for byte

    anthropic = anthropic_stream_events()
    gemini = gemini_stream_events()
    route = Route(None, "gemini", "gemini-2.5-flash", "gemini-2.5-flash")

    def translate_anthropic() -> None:
        for _ in range(20):
            translator = AnthropicStream("claude-x", "chatcmpl-bench", 1_760_000_000, True)
            for event in anthropic:
                translator.feed(event)
            translator.finish()

    def translate_gemini() -> None:
        for _ in range(20):
            ids = iter(range(10**9))
            ctx = ChatContext("chatcmpl-bench", 1_760_000_000, lambda ids=ids: str(next(ids)), True)
            translator = GeminiStream(route, ctx)
            for event in gemini:
                translator.feed(event)
            translator.finish()

    translate_anthropic()  # warm both, and check they produce OpenAI chunks
    probe = AnthropicStream("claude-x", "chatcmpl-bench", 1, True)
    assert b"chat.completion.chunk" in b"".join(probe.feed(e) for e in anthropic)
    baseline = _per_item(handed_on, n, repeats)
    return {
        "handed_on_us": baseline,
        "observer_us": _per_item(observed, n, repeats),
        "anthropic_us": _per_item(translate_anthropic, 20 * len(anthropic), repeats),
        "gemini_us": _per_item(translate_gemini, 20 * len(gemini), repeats),
        "anthropic_events": len(anthropic),
        "gemini_events": len(gemini),
    }


def _anthropic_steps(n: int) -> list[str]:
    def event(kind: str, **fields) -> str:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n"

    start = event(
        "message_start",
        message={
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [],
            "usage": {"input_tokens": 3, "output_tokens": 0},
        },
    )
    block = event("content_block_start", index=0, content_block={"type": "text", "text": ""})
    deltas = [
        event("content_block_delta", index=0, delta={"type": "text_delta", "text": f" w{i}"})
        for i in range(n)
    ]
    end = (
        event("content_block_stop", index=0)
        + event("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": n})
        + event("message_stop")
    )
    return [start + block, *deltas, end]


def _gemini_steps(n: int) -> list[str]:
    def frame(text: str, finish: str | None = None) -> str:
        candidate: dict = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        usage = {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4}
        doc = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-x"}
        return f"data: {json.dumps(doc)}\r\n\r\n"

    return [frame(f" w{i}") for i in range(n)] + [frame("", "STOP")]


def _chat(model: str) -> str:
    messages = [{"role": "user", "content": "x"}]
    return json.dumps({"model": model, "stream": True, "messages": messages})


async def _one_stream(env, body: str, expect_events: int) -> float:
    """µs for one streamed request, its body read by JS; fails unless every event arrived."""
    start = now_us()
    resp, ctx = await call_fetch(env, make_request(body=body))
    raw = (await resp.arrayBuffer()).to_bytes()
    elapsed = now_us() - start
    outcomes = await ctx.settled()
    bad = [o.reason for o in outcomes if o.status != "fulfilled"]
    assert resp.status == 200 and not bad, (resp.status, bad, raw[:200])
    received = raw.count(b"data: ")
    assert received >= expect_events, f"{received} events, expected {expect_events}"
    return elapsed


async def end_to_end_figures(n: int, rounds: int) -> dict[str, dict[str, float]]:
    """Interleaved rounds (machine drift hits every mode alike); per mode, µs per upstream
    event: the fastest round and the median."""
    TEST.script("bench-openai", [CHUNK.decode()] * n + ["data: [DONE]\n\n"], False)
    TEST.script("bench-anthropic", _anthropic_steps(n), False)
    TEST.script("bench-gemini", _gemini_steps(n), False, False, "text/event-stream")
    openai = {"OPENAI_BASE_URL": f"{UPSTREAM}/script/bench-openai", "OPENAI_API_KEY": "k"}
    modes = {
        "zero copy (bare relay)": (openai | {"EDGERELAY_IDLE_TIMEOUT": "off"}, "gpt-x", n + 1),
        "observed, idle-timed (default)": (openai, "gpt-x", n + 1),
        "observed, no idle timer": (
            openai | {"EDGERELAY_ZERO_COPY": "false", "EDGERELAY_IDLE_TIMEOUT": "off"},
            "gpt-x",
            n + 1,
        ),
        "Anthropic translated": (
            {"ANTHROPIC_BASE_URL": f"{UPSTREAM}/script/bench-anthropic", "ANTHROPIC_API_KEY": "k"},
            "claude-x",
            n,
        ),
        "Gemini translated": (
            {"GEMINI_BASE_URL": f"{UPSTREAM}/script/bench-gemini", "GEMINI_API_KEY": "k"},
            "gemini-x",
            n,
        ),
    }
    # Anonymous calls allowed (the Worker refuses them by default); no log line per request.
    quiet = {"EDGERELAY_ALLOW_ANONYMOUS": "true", "EDGERELAY_LOG": "off"}
    envs = {
        mode: (make_env(**quiet, **settings), _chat(model), expect)
        for mode, (settings, model, expect) in modes.items()
    }
    samples: dict[str, list[float]] = {mode: [] for mode in modes}
    for env, body, expect in envs.values():  # warm-up: imports, the per-isolate config cache
        await _one_stream(env, body, expect)
    for _ in range(rounds):
        for mode, (env, body, expect) in envs.items():
            samples[mode].append(await _one_stream(env, body, expect) / n)
    return {
        mode: {"best": min(values), "median": statistics.median(values)}
        for mode, values in samples.items()
    }


async def run(events: int = 2000, rounds: int = 5, repeats: int = 5) -> str:
    """Both kinds of figure, as JSON for the JS side to print."""
    ran = []

    async def canary() -> None:  # proves this coroutine chain is really awaited
        await js.Promise.new(lambda resolve, reject: js.setTimeout(resolve, 1))
        ran.append(True)

    await canary()
    if not ran:
        raise RuntimeError("a coroutine returned before it ran: the figures would be empty")
    return json.dumps(
        {
            "core": core_figures(repeats),
            "e2e": await end_to_end_figures(events, rounds),
            "events": events,
            "rounds": rounds,
        }
    )
