// Runs a wasm32-wasip1 command module under Node's WASI (node:wasi): the
// cargo runner behind `make bench-compare`, so that the comparator benchmark
// is measured in a wasm VM (V8's, as Envoy's is) from the same source.
//
//   CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings bench/wasm-run.mjs" \
//     cargo bench -p parallel-run-core --bench compare --target wasm32-wasip1
import { readFile } from "node:fs/promises";
import { argv, env, exit } from "node:process";
import { WASI } from "node:wasi";

const [file, ...args] = argv.slice(2);
if (!file) {
  console.error("usage: node bench/wasm-run.mjs MODULE.wasm [ARGS...]");
  exit(2);
}
const wasi = new WASI({ version: "preview1", args: [file, ...args], env, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
exit(wasi.start(instance) ?? 0);
