"""Call the Worker's ``fetch`` the way workerd does, so a test sees what production sees.

workerd (src/pyodide/python-entrypoint-helper.ts and introspection.py) constructs the entry
class with the JS ``ExecutionContext`` and ``env`` (the SDK's ``WorkerEntrypoint.__init__`` then
patches ``ctx.waitUntil`` and wraps ``env``), converts each argument with the SDK's
``python_from_rpc`` (a JS ``Request`` becomes a ``workers.Request``), calls the method with
``relaxed_call`` and converts the result with ``python_to_rpc`` (a ``workers.Response`` becomes
its JS ``Response``). ``call_fetch`` does exactly that.

The Worker is imported from the assembled upload folder (build/worker, made by
workers/cloudflare/build.py) with its top-level modules, as wrangler uploads it; the repo's own
``workers/`` directory has no ``__init__.py`` and so can never shadow the SDK's ``workers``.
"""

import importlib
import inspect
import sys
from pathlib import Path

import js
from pyodide.code import relaxed_call
from pyodide.ffi import to_js

UPLOAD = Path("/repo/build/worker")
UPSTREAM = js.EDGERELAY_TEST.upstream
WORKERD = js.EDGERELAY_TEST.workerd


def load_entry():
    """The ``entry`` module from build/worker (fails loudly if it was not built)."""
    if not (UPLOAD / "entry.py").exists():
        raise RuntimeError("build/worker is missing: run python3 workers/cloudflare/build.py")
    if str(UPLOAD) not in sys.path:
        sys.path.insert(0, str(UPLOAD))
    workers = importlib.import_module("workers")
    assert "site-packages" in (workers.__file__ or ""), f"wrong workers: {workers.__file__}"
    entry = importlib.import_module("entry")
    assert Path(entry.__file__) == UPLOAD / "entry.py", entry.__file__
    return entry


def js_object(**fields):
    return to_js(fields, dict_converter=js.Object.fromEntries)


def make_env(**settings):
    """The env object workerd hands the entrypoint: vars and secrets as strings."""
    return WORKERD.makeEnv(to_js(list(settings.items())))


def make_request(
    path="/v1/chat/completions", *, method="POST", body=None, headers=None, signal=None
):
    init = {"method": method, "headers": headers or {"content-type": "application/json"}}
    if body is not None:
        init["body"] = body if isinstance(body, str) else to_js(body)
    if signal is not None:
        init["signal"] = signal
    return js.Request.new("https://edgerelay.example.workers.dev" + path, js_object(**init))


async def call_fetch(env, js_request, ctx=None):
    """(JS Response, ctx) as workerd would produce them for this request."""
    from workers import Request, python_from_rpc, python_to_rpc

    entry = load_entry()
    ctx = ctx if ctx is not None else WORKERD.makeContext()
    instance = entry.Default(ctx, env)
    request = python_from_rpc(js_request)
    assert isinstance(request, Request)  # fetch gets a workers.Request, not a JS Request
    result = relaxed_call(instance.fetch, request)
    if inspect.isawaitable(result):
        result = await result
    return python_to_rpc(result), ctx


async def read_event(reader, buf=b""):
    """Read until one whole SSE event is buffered; return (event bytes, remainder)."""
    while b"\n\n" not in buf:
        chunk = await reader.read()
        assert not chunk.done, f"stream ended early, buffered {buf!r}"
        buf += chunk.value.to_bytes()
    event, _, rest = buf.partition(b"\n\n")
    return event, rest


async def read_all(reader, buf=b""):
    while True:
        chunk = await reader.read()
        if chunk.done:
            return buf
        buf += chunk.value.to_bytes()
