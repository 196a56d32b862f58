// The Cloudflare Worker's figures under Pyodide on Node (the npm `pyodide`, the same line the
// Workers runtime uses), each beside a baseline from the same run:
//   - CPU per relayed chunk with the stream observer on, against the bare relay (zero copy);
//   - CPU per translated event (Anthropic and Gemini to OpenAI chunks);
//   - the cold import of the Worker (core + adapter) and of the `workers` SDK.
// The Python side is bench/worker_cost.py; the loader and the loopback upstream are the Pyodide
// test harness's (tests/pyodide). Figures only: nothing here is a test.
//
//   python3 workers/cloudflare/build.py && node bench/worker_bench.mjs [--events N] [--rounds N] [--imports N]
//
// Node is not workerd (V8 the same, but not its event loop or isolate limits): read the
// figures as the Worker's own work, not as the edge's wall-clock time.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { coldImports } from "../tests/pyodide/bench_import.mjs";
import { startUpstream } from "../tests/pyodide/upstream.mjs";
import { helpers as workerdHelpers, registerWorkerdModules } from "../tests/pyodide/workerd_env.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CACHE = path.resolve(process.env.PYODIDE_WHEEL_CACHE ?? path.join(ROOT, ".cache/pyodide-wheels"));
const { values: opts } = parseArgs({
  options: {
    events: { type: "string", default: "2000" },
    rounds: { type: "string", default: "5" },
    imports: { type: "string", default: "3" },
  },
});
const wheel = (prefix) => {
  const found = fs.existsSync(CACHE) && fs.readdirSync(CACHE).find((f) => f.startsWith(prefix) && f.endsWith(".whl"));
  if (!found) throw new Error(`no ${prefix} wheel in ${CACHE}: run sh tests/pyodide/fetch_wheels.sh`);
  return found;
};
if (!fs.existsSync(path.join(ROOT, "build/worker/entry.py"))) {
  console.error("build/worker missing: run python3 workers/cloudflare/build.py");
  process.exit(2);
}
// A hung await must not hang `make bench`.
setTimeout(() => {
  console.error("worker_bench: no result within 600 s");
  process.exit(2);
}, 600_000).unref();

const load = () => os.loadavg()[0].toFixed(2);
console.log(`## Cloudflare Worker under Pyodide (Node ${process.version}, load average ${load()})\n`);

// --- the Worker's cost per event ------------------------------------------------------------
const upstream = await startUpstream();
globalThis.EDGERELAY_TEST = { ...upstream.helpers, workerd: workerdHelpers };
const { loadPyodide, version } = await import("pyodide");
const pyodide = await loadPyodide({
  env: { HOME: "/home/pyodide", PYTHONDONTWRITEBYTECODE: "1", EDGERELAY_TEST_UPSTREAM: upstream.url },
});
registerWorkerdModules(pyodide);
for (const [host, mnt] of [[ROOT, "/repo"], [CACHE, "/wheels"]]) {
  pyodide.FS.mkdirTree(mnt);
  pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root: host }, mnt);
}
await pyodide.loadPackage(path.join(CACHE, wheel("micropip-")), { messageCallback: () => {} });
pyodide.globals.set("_sdk", wheel("workers_runtime_sdk-"));
pyodide.globals.set("_args", pyodide.toPy([Number(opts.events), Number(opts.rounds)]));
// As run.mjs lays it out: core installs as edgerelay.core; awaited from the top level (no JSPI).
const figures = JSON.parse(
  await pyodide.runPythonAsync(`
import os, sys, micropip
await micropip.install("emfs:/wheels/" + _sdk, deps=False)
sys.dont_write_bytecode = True
os.makedirs("/pkgs/edgerelay", exist_ok=True)
if not os.path.islink("/pkgs/edgerelay/core"):
    os.symlink("/repo/core", "/pkgs/edgerelay/core")
with open("/pkgs/edgerelay/__init__.py", "w") as f:
    f.write('__path__.append("/repo/edgerelay")')
sys.path[:0] = ["/pkgs", "/repo"]
sys.path.insert(0, "/repo/bench")
import worker_cost
await worker_cost.run(*_args)
`),
);
await upstream.close();

const us = (x) => `${x.toFixed(1)} µs`;
const { core, e2e } = figures;
console.log(`### Core alone, CPU per event (fastest of 5; synchronous, no event-loop turns)\n`);
console.log("| work | per event | added over handing the chunk on |\n|---|---|---|");
console.log(`| handing an OpenAI chunk on (baseline) | ${us(core.handed_on_us)} | |`);
console.log(`| StreamObserver.feed, idle-timed | ${us(core.observer_us)} | ${us(core.observer_us - core.handed_on_us)} |`);
console.log(`| Anthropic → OpenAI translation (${core.anthropic_events}-event stream) | ${us(core.anthropic_us)} | |`);
console.log(`| Gemini → OpenAI translation (${core.gemini_events}-frame stream) | ${us(core.gemini_us)} | |`);

const bare = e2e["zero copy (bare relay)"];
console.log(
  `\n### Through the Worker's fetch, per upstream event (${figures.events} events a stream, ` +
    `${figures.rounds} interleaved rounds, body read by JS)\n`,
);
console.log("| stream | fastest | median | added over the bare relay (fastest) |\n|---|---|---|---|");
for (const [mode, f] of Object.entries(e2e)) {
  const added = mode === "zero copy (bare relay)" ? "" : `+${us(f.best - bare.best)}`;
  console.log(`| ${mode} | ${us(f.best)} | ${us(f.median)} | ${added} |`);
}

// --- cold import: a fresh Pyodide each run, only the upload folder mounted ------------------
const runs = Number(opts.imports);
const imports = await coldImports(runs);
const best = (k) => Math.min(...imports.map((r) => r[k])).toFixed(0);
const all = (k) => imports.map((r) => r[k].toFixed(0)).join(", ");
console.log(`\n### Cold import, fresh Pyodide, no bytecode (as an isolate without a snapshot)\n`);
console.log("| import | best | runs (ms) |\n|---|---|---|");
console.log(`| core + Worker adapter (\`import entry\`) | ${best("ours")} ms | ${all("ours")} |`);
console.log(`| \`workers\` SDK | ${best("sdk")} ms | ${all("sdk")} |`);
console.log(`\nPyodide ${version}; load average at the end ${load()}`);
// Pyodide's WebLoop can leave timers behind; the figures are out.
process.exit(0);
