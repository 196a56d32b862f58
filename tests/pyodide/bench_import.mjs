// How long a fresh Pyodide takes to import the Worker (build/worker/entry.py), as a cold
// isolate would without Cloudflare's memory snapshot: nothing but Pyodide's own start-up is
// imported beforehand, and only the upload folder is mounted (not the repository).
//
//   python3 workers/cloudflare/build.py && node tests/pyodide/bench_import.mjs [runs=3]
//
// Prints one line per run and the best: the SDK (`import workers`), then core + the Worker's
// modules (`import entry`, which imports the rest).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { registerWorkerdModules } from "./workerd_env.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const CACHE = path.resolve(process.env.PYODIDE_WHEEL_CACHE ?? path.join(ROOT, ".cache/pyodide-wheels"));
const UPLOAD = path.join(ROOT, "build/worker");
const wheel = (prefix) => fs.readdirSync(CACHE).find((f) => f.startsWith(prefix) && f.endsWith(".whl"));

/** One fresh Pyodide per run; returns [{sdk, ours}] in ms (bench/worker_bench.mjs uses it). */
export async function coldImports(runs, report = () => {}) {
  if (!fs.existsSync(path.join(UPLOAD, "entry.py"))) {
    throw new Error("build/worker missing: run python3 workers/cloudflare/build.py");
  }
  const { loadPyodide } = await import("pyodide");
  const results = [];
  for (let i = 0; i < runs; i++) {
    const pyodide = await loadPyodide({ env: { PYTHONDONTWRITEBYTECODE: "1" } });
    registerWorkerdModules(pyodide);
    for (const [host, mnt] of [[UPLOAD, "/worker"], [CACHE, "/wheels"]]) {
      pyodide.FS.mkdirTree(mnt);
      pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root: host }, mnt);
    }
    await pyodide.loadPackage(path.join(CACHE, wheel("micropip-")), { messageCallback: () => {} });
    pyodide.globals.set("_sdk", wheel("workers_runtime_sdk-"));
    const out = await pyodide.runPythonAsync(`
import micropip, sys, time, json
await micropip.install("emfs:/wheels/" + _sdk, deps=False)
sys.dont_write_bytecode = True
sys.path.insert(0, "/worker")
t0 = time.perf_counter()
import workers
t1 = time.perf_counter()
import entry
t2 = time.perf_counter()
assert entry.__file__ == "/worker/entry.py"
json.dumps({"sdk": (t1 - t0) * 1000, "ours": (t2 - t1) * 1000})
`);
    const r = JSON.parse(out);
    results.push(r);
    report(
      `run ${i + 1}: import workers (SDK) ${r.sdk.toFixed(0)} ms; import entry (core + Worker) ${r.ours.toFixed(0)} ms`,
    );
  }
  return results;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const runs = Number(process.argv[2] ?? 3);
  const results = await coldImports(runs, console.log);
  const best = (k) => Math.min(...results.map((r) => r[k])).toFixed(0);
  console.log(`best of ${runs}: SDK ${best("sdk")} ms, core + Worker ${best("ours")} ms (Pyodide ${(await import("pyodide")).version ?? ""})`);
  process.exit(0);
}
