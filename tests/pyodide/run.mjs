// Offline test harness: runs the project's Python tests inside real Pyodide on Node.
//
//   npm ci && sh tests/pyodide/fetch_wheels.sh     # once; only registry downloads
//   node tests/pyodide/run.mjs [options] [pytest args...]
//
// 1. pytest over tests/core/ (sync, CPython-compatible tests), inside Pyodide.
// 2. async tests in tests/pyodide/test_*.py via async_runner.py, awaited from
//    top-level runPythonAsync (the only way to really await without JSPI).
// 3. the canary (test_canary.py) MUST fail; if it passes or does not run, the
//    async machinery is lying and the whole run fails.
// Exit 0 only if all three hold. The last line is `pyodide: N passed, N failed`.
//
// Options: --skip-pytest; --async-only=test_a.py,test_b.py (canary always runs).
// Other args go to pytest; paths in them are relative to the repo root and must
// start with tests/ (e.g. `tests/core/test_x.py -k name -x`); they replace the
// default `tests/core`.
// Env: PYODIDE_WHEEL_CACHE (default .cache/pyodide-wheels), PYODIDE_RUN_TIMEOUT (s).
//
// Inside Pyodide: repo mounted at /repo (cwd, on sys.path), wheel cache at
// /wheels, os.environ["EDGERELAY_PYODIDE"] == "1", the fake upstream (see
// upstream.mjs) at os.environ["EDGERELAY_TEST_UPSTREAM"] / js.EDGERELAY_TEST.
// The JS modules workerd gives the `workers` SDK are registered (workerd_env.mjs),
// with ctx/env factories at js.EDGERELAY_TEST.workerd; the Worker tests import it
// from build/worker (run `python3 workers/cloudflare/build.py` first; make does).
// Any fetch to a non-loopback host is blocked and fails the run: tests and
// package loading must never reach the network.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startUpstream } from "./upstream.mjs";
import { helpers as workerdHelpers, registerWorkerdModules } from "./workerd_env.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const CACHE = path.resolve(
  process.env.PYODIDE_WHEEL_CACHE ?? path.join(ROOT, ".cache/pyodide-wheels"),
);
const CANARY_ID = "test_canary.py::test_canary_must_fail";
const CANARY_SENTINEL = "EDGERELAY-CANARY"; // must appear in the canary's assertion message
const t0 = performance.now();
const secs = (t) => ((performance.now() - t) / 1000).toFixed(1);
const log = (msg) => console.log(`[run.mjs] ${msg}`);

function die(msg) {
  console.error(`[run.mjs] ERROR: ${msg}`);
  process.exit(2);
}

// --- arguments ---------------------------------------------------------------
let skipPytest = false;
let asyncOnly = [];
const pytestExtra = [];
for (const arg of process.argv.slice(2)) {
  if (arg === "--skip-pytest") skipPytest = true;
  else if (arg.startsWith("--async-only=")) asyncOnly = arg.slice(13).split(",").filter(Boolean);
  else pytestExtra.push(arg);
}
if (asyncOnly.length) asyncOnly.push(CANARY_ID.split("::")[0]);
// Only tests/... or *.py args count as paths (so `-k core` keeps the default).
const hasPath = pytestExtra.some((a) => /^tests\/|\.py(::|$)/.test(a));
const pytestArgs = [
  "-p", "no:cacheprovider", // no .pytest_cache written into the mounted repo
  "--rootdir=/repo",
  ...(hasPath ? [] : ["tests/core"]),
  ...pytestExtra,
];

// --- wheels: exactly the pins of requirements.txt, from the local cache -------
const pins = fs
  .readFileSync(path.join(HERE, "requirements.txt"), "utf8")
  .split("\n")
  .map((l) => l.replace(/#.*/, "").trim())
  .filter(Boolean);
const cached = fs.existsSync(CACHE) ? fs.readdirSync(CACHE) : [];
const wheels = pins.map((pin) => {
  const [name, version] = pin.split("==");
  const prefix = `${name.toLowerCase().replace(/[-.]/g, "_")}-${version}-`;
  const file = cached.find((f) => f.startsWith(prefix) && f.endsWith(".whl"));
  if (!file) die(`no wheel for ${pin} in ${CACHE}; run: sh tests/pyodide/fetch_wheels.sh`);
  return file;
});
const micropipWheel = wheels.find((f) => f.startsWith("micropip-"));
if (!micropipWheel) die("requirements.txt must pin micropip");

// --- network guard (installed before Pyodide is imported) -----------------
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);
const blocked = [];
const realFetch = globalThis.fetch;
globalThis.fetch = function guardedFetch(input, init) {
  let url;
  try {
    url = new URL(input?.url ?? String(input));
  } catch {
    return realFetch(input, init); // let fetch produce its own error
  }
  if (!LOOPBACK.has(url.hostname)) {
    blocked.push(url.href);
    console.error(`[run.mjs] BLOCKED non-loopback fetch: ${url.href}`);
    return Promise.reject(new TypeError(`offline test harness: fetch ${url.href} blocked`));
  }
  return realFetch(input, init);
};

// A hung await (e.g. a coroutine that swallows CancelledError) must not hang CI.
const limit = Number(process.env.PYODIDE_RUN_TIMEOUT ?? 900);
setTimeout(() => die(`whole run exceeded ${limit} s`), limit * 1000).unref();

// --- start -----------------------------------------------------------------
const upstream = await startUpstream();
globalThis.EDGERELAY_TEST = { ...upstream.helpers, workerd: workerdHelpers };

const { loadPyodide } = await import("pyodide");
const tLoad = performance.now();
const passEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => k === "CI" || k.startsWith("HYPOTHESIS_")),
);
// The real recorded captures beside the checkout (CI has ../shared; a user's clone may not):
// mounted read-only-in-practice so the fixture tests run here too, not only on CPython.
const SHARED_FIXTURES = process.env.EDGERELAY_SHARED_FIXTURES || path.join(ROOT, "..", "shared", "fixtures");
const mounts = [[ROOT, "/repo"], [CACHE, "/wheels"]];
const fixtureEnv = {};
if (fs.existsSync(SHARED_FIXTURES)) {
  mounts.push([SHARED_FIXTURES, "/shared-fixtures"]);
  fixtureEnv.EDGERELAY_SHARED_FIXTURES = "/shared-fixtures";
}
const pyodide = await loadPyodide({
  env: {
    HOME: "/home/pyodide",
    ...passEnv,
    COLUMNS: String(process.stdout.columns || 100),
    PYTHONDONTWRITEBYTECODE: "1", // keep __pycache__ out of the host repo
    HYPOTHESIS_STORAGE_DIRECTORY: "/tmp/hypothesis", // ditto .hypothesis/
    EDGERELAY_PYODIDE: "1",
    EDGERELAY_TEST_UPSTREAM: upstream.url,
    ...fixtureEnv,
  },
});
// Raw writes (not line-batched) so pytest's progress dots appear as they happen.
// Copy: Pyodide reuses the buffer after we return.
pyodide.setStdout({ write: (buf) => (process.stdout.write(Buffer.from(buf)), buf.length) });
pyodide.setStderr({ write: (buf) => (process.stderr.write(Buffer.from(buf)), buf.length) });
const loadSecs = secs(tLoad);
// The two JS modules workerd registers for the `workers` SDK (see workerd_env.mjs).
registerWorkerdModules(pyodide);

const tInstall = performance.now();
for (const [host, mnt] of mounts) {
  pyodide.FS.mkdirTree(mnt);
  pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root: host }, mnt);
}
// micropip is not in the npm package; a local file path loads without network.
await pyodide.loadPackage(path.join(CACHE, micropipWheel), { messageCallback: () => {} });
pyodide.globals.set("_wheels", pyodide.toPy(wheels.filter((f) => f !== micropipWheel)));
await pyodide.runPythonAsync(`
import os, sys, micropip
# deps=False + emfs: paths: micropip never consults an index (and the fetch
# guard above turns any attempt into a loud failure).
await micropip.install(["emfs:/wheels/" + f for f in _wheels], deps=False)
del _wheels
sys.dont_write_bytecode = True
os.chdir("/repo")
# The edgerelay package as the wheel lays it out: core/ installs as edgerelay.core.
os.makedirs("/pkgs/edgerelay", exist_ok=True)
if not os.path.islink("/pkgs/edgerelay/core"):
    os.symlink("/repo/core", "/pkgs/edgerelay/core")
with open("/pkgs/edgerelay/__init__.py", "w") as f:
    f.write('__path__.append("/repo/edgerelay")')
sys.path[:0] = ["/pkgs", "/repo", "/repo/tests/pyodide"]
`);
log(`pyodide ${pyodide.version} loaded in ${loadSecs} s; wheels installed in ${secs(tInstall)} s`);

// --- 1. pytest (sync) -------------------------------------------------------
let py = { exit: 0, passed: 0, failed: 0, skipped: 0 };
if (!skipPytest) {
  log(`pytest ${pytestArgs.join(" ")}`);
  const run = pyodide.pyimport("pytest_runner").run;
  py = JSON.parse(run(pyodide.toPy(pytestArgs)));
}

// --- 2. async tests, truly awaited ------------------------------------------
log("async tests (tests/pyodide/test_*.py)");
pyodide.globals.set("_only", pyodide.toPy(asyncOnly));
const results = JSON.parse(
  await pyodide.runPythonAsync(`
import async_runner
await async_runner.run("/repo/tests/pyodide", only=_only)
`),
);

// --- 3. canary + verdict -----------------------------------------------------
const problems = [];
const canary = results.find((r) => r.id === CANARY_ID);
if (!canary) problems.push(`canary ${CANARY_ID} did not run`);
else if (canary.outcome === "xpassed")
  problems.push("canary PASSED: async tests are not really awaited; their results mean nothing");
else if (canary.exc_type !== "AssertionError" || !canary.message?.includes(CANARY_SENTINEL))
  problems.push(`canary failed for the wrong reason (${canary.exc_type}: ${canary.message})`);
const aPassed = results.filter((r) => ["passed", "xfailed"].includes(r.outcome)).length;
const aFailed = results.length - aPassed;
if (py.exit !== 0) problems.push(`pytest exited ${py.exit}`);
if (aFailed) problems.push(`${aFailed} async test(s) failed`);
if (blocked.length) problems.push(`non-loopback fetches attempted: ${blocked.join(", ")}`);

await upstream.close();
for (const p of problems) console.error(`[run.mjs] FAILED: ${p}`);
log(`total ${secs(t0)} s`);
const skipped = py.skipped ? `, ${py.skipped} skipped` : "";
// Never print "0 failed" for a failing run (e.g. missing canary, pytest usage error).
const failed = Math.max(py.failed + aFailed, problems.length ? 1 : 0);
console.log(`pyodide: ${py.passed + aPassed} passed, ${failed} failed${skipped}`);
// Explicit exit: WebLoop never clears the setTimeout behind a cancelled asyncio
// timer (e.g. every finished wait_for), which would keep Node alive for up to
// each test's full timeout. stdout/stderr writes are synchronous on Linux.
process.exit(problems.length ? 1 : 0);
