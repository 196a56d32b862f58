// What one JWT signature check costs the Worker: WebCryptoVerifier (build/worker/
// webcrypto_verify.py) under Pyodide over Node's crypto.subtle, on the CPython-signed vectors
// of jws_vectors.json (RSA 2048, P-256, Ed25519).
//
//   python3 workers/cloudflare/build.py && node tests/pyodide/bench_verify.mjs [rounds=200]
//
// uncached: a fresh verifier each time, so importKey (parsing the JWK) + verify, as the first
//           request with a key costs; cached: one verifier, the CryptoKey kept, verify only.
// Prints the median per verification in ms. workerd's BoringSSL is not Node's OpenSSL: read
// these as the Python + FFI overhead plus a native verification, not as the edge's numbers.
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
json.dumps(figures)
`);
for (const [alg, [uncached, cached]] of Object.entries(JSON.parse(out))) {
  console.log(
    `${alg.padEnd(6)} uncached (importKey + verify) ${uncached.toFixed(3)} ms; cached key (verify) ${cached.toFixed(3)} ms`,
  );
}
console.log(`median of ${rounds} cached / ${Math.max(Math.floor(rounds / 10), 5)} uncached, Pyodide ${pyodide.version}, Node ${process.version}`);
process.exit(0);
