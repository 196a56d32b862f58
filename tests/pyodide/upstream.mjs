// Loopback fake upstream for tests running inside Pyodide.
//
// Why it lives on the JS side: Pyodide shares Node's event loop and has no
// sockets, so a server cannot be started from Python. run.mjs starts this one
// on 127.0.0.1:<random port> before any test and publishes it to Python as
//   os.environ["EDGERELAY_TEST_UPSTREAM"]  and  js.EDGERELAY_TEST.upstream
// (e.g. "http://127.0.0.1:41234"), with helpers js.EDGERELAY_TEST.ack(id, k)
// and js.EDGERELAY_TEST.sent(id) for the lock-step route.
//
// Routes (any method unless noted):
//   /echo, /echo/...    200 JSON {method, path, query, headers, body, body_b64}
//   /sse?n=5&delay=0&done=0
//                       text/event-stream: n events `data: {"i": i}\n\n`, each its
//                       own write, `delay` ms apart; done=1 appends `data: [DONE]`.
//   /lockstep?n=5&id=X&timeout=20000
//                       n events `data: {"id": X, "k": k}\n\n`. Event 0 is sent at
//                       once; event k+1 only after the client acknowledges event k,
//                       via POST /ack?id=X&k=K or js.EDGERELAY_TEST.ack(X, K). A
//                       relay that buffers the stream never delivers event k, so
//                       nobody acks and the test times out (= fails). Without an
//                       ack within `timeout` ms the connection is destroyed.
//   /ls/<id>/<n>/...    the same as /lockstep?id=<id>&n=<n>, usable as a provider's base URL.
//   /script/<id>/...    steps registered with js.EDGERELAY_TEST.script(id, steps, lockstep,
//                       cut, contentType), as text/event-stream (or contentType), in
//                       lock-step (acks as above) or all at once; with `cut`, the
//                       connection is dropped after the last step instead of ending the body.
//   /slow/<ms>/...      200 JSON after <ms> ms (headers included): for timeouts and aborts.
//   /faults/<id>/...    request n answers faults(id)[n] (the last repeats), registered with
//                       js.EDGERELAY_TEST.faults(id, [{status, headers, body, then}]) where
//                       body is a list of strings written one by one and then is "end",
//                       "stall" (hold the connection, send nothing more) or "cut" (destroy
//                       it); faultsSeen(id) counts requests, faultsOpen(id) open responses.
//   POST /ack?id=X&k=K  204 ok; 404 unknown id; 409 wrong k (also aborts stream X).
//   /status/<code>/...  responds <code> with JSON {"status": code} (no body for 204, 304).
//   /echo-status/<code>/...
//                       responds <code> with an OpenAI-shaped error quoting the request's
//                       headers, and its authorization header as x-request-id (an upstream
//                       that echoes the key back).
import http from "node:http";

const lockstep = new Map(); // id -> {active, sent, gone, release(k) -> http status}
const scripts = new Map(); // id -> {steps: [string], lockstep: bool}, set by script(id, ...)
const faults = new Map(); // id -> {steps: [fault], seen: n, open: n}, set by faults(id, ...)

function sseEvent(obj) {
  return typeof obj === "string" ? `data: ${obj}\n\n` : `data: ${JSON.stringify(obj)}\n\n`;
}

function startStream(res, contentType = "text/event-stream") {
  // No Content-Length: Node uses chunked encoding and flushes every write.
  res.writeHead(200, { "content-type": contentType, "cache-control": "no-cache" });
  res.flushHeaders();
}

function ack(id, k) {
  const s = lockstep.get(String(id));
  return s?.active ? s.release(Number(k)) : 404;
}

// Writes events[k] and waits for ack k before events[k+1]; see the header for the protocol.
async function serveLockstep(res, id, events, timeoutMs) {
  if (lockstep.get(id)?.active) {
    res.writeHead(409, { "content-type": "application/json" });
    return res.end(JSON.stringify({ error: `lockstep id ${id} in use` }));
  }
  startStream(res);
  // Kept after the stream ends so `sent(id)` and `gone(id)` still answer.
  const state = { active: true, sent: 0, gone: false, release: () => 409 };
  lockstep.set(id, state);
  let wake = null; // resolves the current wait early if the client goes away
  res.on("close", () => {
    if (state.active) state.gone = true; // closed before our end or timeout: the client left
    wake?.(false);
  });
  for (let k = 0; k < events.length; k++) {
    res.write(events[k]);
    state.sent = k + 1;
    if (k === events.length - 1) break;
    const ok = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      timer.unref(); // never keep the harness alive on its own
      wake = resolve;
      state.release = (got) => {
        clearTimeout(timer);
        state.release = () => 409;
        resolve(got === k);
        return got === k ? 204 : 409;
      };
    });
    if (!ok) {
      state.active = false;
      if (!state.gone) console.error(`[upstream] lockstep ${id}: event ${k} not acked (timeout/bad ack)`);
      return res.destroy();
    }
  }
  state.active = false;
  return res.end();
}

async function handle(req, res, body) {
  const url = new URL(req.url, "http://upstream.invalid");
  const q = url.searchParams;
  const sendJson = (status, obj) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(obj));
  };

  if (url.pathname === "/echo" || url.pathname.startsWith("/echo/")) {
    return sendJson(200, {
      method: req.method,
      path: url.pathname,
      query: Object.fromEntries(q),
      headers: req.headers,
      body: body.toString("utf8"),
      body_b64: body.toString("base64"),
    });
  }
  if (url.pathname === "/sse") {
    const n = Number(q.get("n") ?? 5);
    const delay = Number(q.get("delay") ?? 0);
    startStream(res);
    for (let i = 0; i < n; i++) {
      if (i && delay) await new Promise((r) => setTimeout(r, delay));
      res.write(sseEvent({ i }));
    }
    if (q.get("done") === "1") res.write(sseEvent("[DONE]"));
    return res.end();
  }
  if (url.pathname === "/lockstep") {
    const n = Number(q.get("n") ?? 5);
    const id = q.get("id") ?? "default";
    const events = Array.from({ length: n }, (_, k) => sseEvent({ id, k }));
    return serveLockstep(res, id, events, Number(q.get("timeout") ?? 20000));
  }
  // The same under a path, so it can be a provider's base URL (core appends its own path).
  let m = /^\/ls\/([\w-]+)\/(\d+)(\/.*)?$/.exec(url.pathname);
  if (m) {
    const [id, n] = [m[1], Number(m[2])];
    const events = Array.from({ length: n }, (_, k) => sseEvent({ id, k }));
    return serveLockstep(res, id, events, 20000);
  }
  m = /^\/script\/([\w-]+)(\/.*)?$/.exec(url.pathname);
  if (m) {
    const script = scripts.get(m[1]);
    if (!script) return sendJson(404, { error: `no script ${m[1]}` });
    if (!script.lockstep) {
      startStream(res, script.contentType);
      const last = script.steps.length - 1;
      script.steps.forEach((step, k) =>
        // A cut drops the connection once the last step is flushed: no terminating chunk.
        res.write(step, k === last && script.cut ? () => res.destroy() : undefined),
      );
      return script.cut ? undefined : res.end();
    }
    return serveLockstep(res, m[1], script.steps, 20000);
  }
  m = /^\/faults\/([\w-]+)(\/.*)?$/.exec(url.pathname);
  if (m) {
    const state = faults.get(m[1]);
    if (!state) return sendJson(404, { error: `no faults ${m[1]}` });
    const fault = state.steps[Math.min(state.seen, state.steps.length - 1)];
    state.seen += 1;
    state.open += 1;
    res.on("close", () => (state.open -= 1));
    res.writeHead(fault.status ?? 200, fault.headers ?? {});
    res.flushHeaders();
    for (const piece of fault.body ?? []) res.write(piece);
    if (fault.then === "stall") return; // held until the client closes it
    if (fault.then === "cut") return setTimeout(() => res.destroy(), 10);
    return res.end();
  }
  m = /^\/slow\/(\d+)(\/.*)?$/.exec(url.pathname);
  if (m) {
    const closed = new Promise((resolve) => res.on("close", resolve));
    const timer = setTimeout(() => sendJson(200, { slow: Number(m[1]) }), Number(m[1]));
    timer.unref();
    await closed;
    clearTimeout(timer);
    return;
  }
  if (url.pathname === "/ack" && req.method === "POST") {
    const status = ack(q.get("id"), q.get("k"));
    res.writeHead(status);
    return res.end();
  }
  m = /^\/echo-status\/(\d{3})(\/.*)?$/.exec(url.pathname);
  if (m) {
    const echoed = JSON.stringify({ error: { message: `got ${JSON.stringify(req.headers)}` } });
    res.writeHead(Number(m[1]), {
      "content-type": "application/json",
      "x-request-id": String(req.headers.authorization ?? req.headers["x-api-key"] ?? ""),
    });
    return res.end(echoed);
  }
  m = /^\/status\/(\d{3})(\/.*)?$/.exec(url.pathname);
  if (m) return sendJson(Number(m[1]), { status: Number(m[1]) });
  return sendJson(404, { error: `no route ${url.pathname}` });
}

export async function startUpstream() {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      handle(req, res, Buffer.concat(chunks)).catch((err) => {
        console.error("[upstream]", err);
        res.destroy(err);
      });
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    helpers: {
      upstream: url,
      // `sent` lets a test assert the server has NOT yet released event k+1
      // when the client sees event k (-1 for an unknown id).
      ack: (id, k) => ack(id, k),
      sent: (id) => lockstep.get(String(id))?.sent ?? -1,
      // True once the client closed lock-step stream `id` before its end (cancel/abort).
      gone: (id) => lockstep.get(String(id))?.gone ?? false,
      // Register what /script/<id>/... serves: `steps` (strings, e.g. several SSE events
      // each) written one by one, in lock-step unless lockstep is false.
      script: (id, steps, lockstep = true, cut = false, contentType = "text/event-stream") => {
        scripts.set(String(id), {
          steps: Array.from(steps),
          lockstep: Boolean(lockstep),
          cut: Boolean(cut),
          contentType,
        });
      },
      // Register what /faults/<id>/... answers, request by request (a JSON string of faults).
      faults: (id, json) => faults.set(String(id), { steps: JSON.parse(json), seen: 0, open: 0 }),
      faultsSeen: (id) => faults.get(String(id))?.seen ?? -1,
      faultsOpen: (id) => faults.get(String(id))?.open ?? -1,
    },
    close() {
      server.closeAllConnections(); // undici keeps idle keep-alive sockets open
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
