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
//   /echo               200 JSON {method, path, query, headers, body, body_b64}
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
//   POST /ack?id=X&k=K  204 ok; 404 unknown id; 409 wrong k (also aborts stream X).
//   /status/<code>      responds <code> with JSON {"status": code}.
import http from "node:http";

const lockstep = new Map(); // id -> {active, sent, release(k) -> http status}

function sseEvent(obj) {
  return typeof obj === "string" ? `data: ${obj}\n\n` : `data: ${JSON.stringify(obj)}\n\n`;
}

function startStream(res) {
  // No Content-Length: Node uses chunked encoding and flushes every write.
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  res.flushHeaders();
}

function ack(id, k) {
  const s = lockstep.get(String(id));
  return s?.active ? s.release(Number(k)) : 404;
}

async function handle(req, res, body) {
  const url = new URL(req.url, "http://upstream.invalid");
  const q = url.searchParams;
  const sendJson = (status, obj) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(obj));
  };

  if (url.pathname === "/echo") {
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
    const timeoutMs = Number(q.get("timeout") ?? 20000);
    if (lockstep.get(id)?.active) return sendJson(409, { error: `lockstep id ${id} in use` });
    startStream(res);
    // Kept after the stream ends so `sent(id)` still answers for the last event.
    const state = { active: true, sent: 0, release: () => 409 };
    lockstep.set(id, state);
    let wake = null; // resolves the current wait early if the client goes away
    res.on("close", () => wake?.(false));
    for (let k = 0; k < n; k++) {
      res.write(sseEvent({ id, k }));
      state.sent = k + 1;
      if (k === n - 1) break;
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
        console.error(`[upstream] lockstep ${id}: event ${k} not acked (timeout/bad ack/gone)`);
        return res.destroy();
      }
    }
    state.active = false;
    return res.end();
  }
  if (url.pathname === "/ack" && req.method === "POST") {
    const status = ack(q.get("id"), q.get("k"));
    res.writeHead(status);
    return res.end();
  }
  const m = /^\/status\/(\d{3})$/.exec(url.pathname);
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
    },
    close() {
      server.closeAllConnections(); // undici keeps idle keep-alive sockets open
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
