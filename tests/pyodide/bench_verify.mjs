// What one JWT signature check costs the Worker: WebCryptoVerifier (build/worker/
// webcrypto_verify.py) under Pyodide over Node's crypto.subtle, on the CPython-signed vectors
// of jws_vectors.json (RSA 2048, P-256, Ed25519).
//
//   python3 workers/cloudflare/build.py && node tests/pyodide/bench_verify.mjs [rounds=200]
//
// uncached: a fresh verifier each time, so importKey (parsing the JWK) + verify, as the first
//           request with a key costs; cached: one verifier, the CryptoKey kept, verify only.
// Prints the median per verification in ms, the same verification from JS alone, and the cost of
// one await of a resolved JS promise from Python (Pyodide's event loop on Node), which every
// Python-side figure contains. workerd's BoringSSL and its event loop are not Node's: read these
// as the shape of the cost (import vs cached), not as the edge's numbers.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const UPLOAD = path.join(ROOT, "build/worker");
const rounds = Number(process.argv[2] ?? 200);
if (!fs.existsSync(path.join(UPLOAD, "webcrypto_verify.py"))) {
  console.error("build/worker missing: run python3 workers/cloudflare/build.py");
  process.exit(2);
}

const { loadPyodide } = await import("pyodide");
const pyodide = await loadPyodide({ env: { PYTHONDONTWRITEBYTECODE: "1" } });
for (const [host, mnt] of [[UPLOAD, "/worker"], [HERE, "/vectors"]]) {
  pyodide.FS.mkdirTree(mnt);
  pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root: host }, mnt);
}
pyodide.globals.set("ROUNDS", rounds);
const out = await pyodide.runPythonAsync(`
import base64, json, statistics, sys, time
import js
sys.dont_write_bytecode = True
sys.path.insert(0, "/worker")
from webcrypto_verify import WebCryptoVerifier

def unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

vectors = json.load(open("/vectors/jws_vectors.json"))["algorithms"]
figures = {}
for alg, vector in vectors.items():
    head, payload, sig = vector["token"].split(".")
    jwk, signing_input, signature = vector["jwks"]["keys"][0], f"{head}.{payload}".encode(), unb64(sig)
    uncached, cached = [], []
    for _ in range(max(ROUNDS // 10, 5)):
        t0 = time.perf_counter()
        assert await WebCryptoVerifier().verify(alg, jwk, signing_input, signature)
        uncached.append(time.perf_counter() - t0)
    verifier = WebCryptoVerifier()
    assert await verifier.verify(alg, jwk, signing_input, signature)
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        assert await verifier.verify(alg, jwk, signing_input, signature)
        cached.append(time.perf_counter() - t0)
    figures[alg] = [statistics.median(uncached) * 1000, statistics.median(cached) * 1000]
# The floor under every figure above: one await of an already-resolved JS promise from Python
# (a trip through Pyodide's event loop on Node).
hops = []
for _ in range(ROUNDS):
    t0 = time.perf_counter()
    await js.Promise.resolve(1)
    hops.append(time.perf_counter() - t0)
figures["hop"] = statistics.median(hops) * 1000
json.dumps(figures)
`);
// The same verification from JS alone: what the runtime's crypto costs without Python.
const vectors = JSON.parse(fs.readFileSync(path.join(HERE, "jws_vectors.json"), "utf8")).algorithms;
const IMPORT = { RS256: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, ES256: { name: "ECDSA", namedCurve: "P-256" }, EdDSA: { name: "Ed25519" } };
const VERIFY = { RS256: { name: "RSASSA-PKCS1-v1_5" }, ES256: { name: "ECDSA", hash: "SHA-256" }, EdDSA: { name: "Ed25519" } };
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function jsOnly(alg) {
  const [head, payload, sig] = vectors[alg].token.split(".");
  const { kty, n, e, crv, x, y } = vectors[alg].jwks.keys[0];
  const jwk = Object.fromEntries(Object.entries({ kty, n, e, crv, x, y }).filter(([, v]) => v));
  const data = new TextEncoder().encode(`${head}.${payload}`);
  const signature = Buffer.from(sig, "base64url");
  const key = await crypto.subtle.importKey("jwk", jwk, IMPORT[alg], false, ["verify"]);
  const times = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    if (!(await crypto.subtle.verify(VERIFY[alg], key, signature, data))) throw new Error(alg);
    times.push(performance.now() - t0);
  }
  return median(times);
}
const figures = JSON.parse(out);
const hop = figures.hop;
delete figures.hop;
for (const [alg, [uncached, cached]] of Object.entries(figures)) {
  const js = await jsOnly(alg);
  console.log(
    `${alg.padEnd(6)} uncached (importKey + verify) ${uncached.toFixed(3)} ms; cached key (verify) ${cached.toFixed(3)} ms; JS alone, cached key ${js.toFixed(3)} ms`,
  );
}
console.log(`one await of a resolved JS promise from Python: ${hop.toFixed(3)} ms`);
console.log(`median of ${rounds} cached / ${Math.max(Math.floor(rounds / 10), 5)} uncached, Pyodide ${pyodide.version}, Node ${process.version}`);
process.exit(0);
