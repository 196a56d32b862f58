// What workerd gives a Python Worker besides Pyodide, rebuilt for Node so the PyPI
// `workers-runtime-sdk` (the `workers` module) loads and runs as in production.
//
// workerd registers two JS modules before the Worker's code is imported
// (src/pyodide/python-entrypoint-helper.ts, setupPatches):
//   _pyodide_entrypoint_helper  doAnImport, cloudflareWorkersModule (`env`, `waitUntil`),
//                               cloudflareSocketsModule, patchWaitUntil, patch_env_helper
//   _cloudflare_compat_flags    the Worker's compatibility flags, by name
// registerWorkerdModules(pyodide) registers the same names here. Tests then build the
// arguments workerd passes: `makeContext()` an ExecutionContext, `makeEnv(obj)` the env.
// How the handler is called and its result converted is in workerd_call.py.

// Flags the SDK reads, as workerd sets them for wrangler.toml's compatibility date
// (2026-11-17: python_workers_314 is on; the header flag defaults on since 2025).
export const COMPAT_FLAGS = {
  python_workers: true,
  python_workers_314: true,
  python_workflows_implicit_dependencies: false,
  python_request_headers_preserve_commas: true,
};

// As workerd: ctx.waitUntil may get a borrowed Python proxy (a coroutine or Task); copy it
// before Python's call returns, destroy the copy once it settled.
const patched = new WeakSet();
function patchWaitUntil(ctx) {
  if (Object.prototype.toString.call(ctx) !== "[object ExecutionContext]") return;
  if (patched.has(ctx)) return;
  const original = ctx.waitUntil.bind(ctx);
  ctx.waitUntil = (p) => {
    original(
      (async () => {
        if (p && typeof p.copy === "function") p = p.copy();
        try {
          await p;
        } finally {
          if (p && typeof p.destroy === "function") p.destroy();
        }
      })(),
    );
  };
  patched.add(ctx);
}

// An ExecutionContext: records every waitUntil promise so a test can wait for them all
// (`await ctx.settled()` -> list of {status, reason}) and see a pump that failed.
export function makeContext() {
  const pending = [];
  return {
    [Symbol.toStringTag]: "ExecutionContext",
    waitUntil(promise) {
      // Settled outcomes, never a rejected promise: Node would crash on an unhandled one.
      pending.push(
        Promise.resolve(promise).then(
          () => ({ status: "fulfilled", reason: "" }),
          (e) => ({ status: "rejected", reason: String(e) }),
        ),
      );
    },
    passThroughOnException() {},
    get pendingCount() {
      return pending.length;
    },
    settled() {
      return Promise.all(pending);
    },
  };
}

// env: a plain object of vars/secrets (strings), as workerd hands it to the entrypoint.
export function makeEnv(entries) {
  return Object.assign(Object.create(null), Object.fromEntries(entries ?? []));
}

let currentEnv = makeEnv();
const cloudflareWorkers = {
  get env() {
    return currentEnv;
  },
  waitUntil(promise) {
    return Promise.resolve(promise);
  },
};

export function registerWorkerdModules(pyodide) {
  pyodide.registerJsModule("_pyodide_entrypoint_helper", {
    async doAnImport(name) {
      if (name === "cloudflare:workers") return cloudflareWorkers;
      if (name === "cloudflare:sockets") return {};
      throw new Error(`test harness: cannot import ${name}`);
    },
    cloudflareWorkersModule: cloudflareWorkers,
    cloudflareSocketsModule: {},
    patchWaitUntil,
    *patch_env_helper(patch) {
      const saved = currentEnv;
      currentEnv = Object.assign(makeEnv(), saved, Object.fromEntries(patch));
      try {
        yield;
      } finally {
        currentEnv = saved;
      }
    },
  });
  pyodide.registerJsModule("_cloudflare_compat_flags", COMPAT_FLAGS);
}

export const helpers = { makeContext, makeEnv };
