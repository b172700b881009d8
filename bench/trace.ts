// `npm run bench:trace`: which backend runs each primitive of one forward and one forward+backward (valueAndGrad of
// sum(output · ct)) of the bench layer, with the share of kernel time left on the reference backend; then, with
// --runs N, the forward's median time over N runs. Not a test: it prints, for anyone to check.
import { parseArgs } from "node:util";
import { Tensor } from "../src/core/tensor.js";
import { valueAndGrad } from "../src/autodiff/grad.js";
import { mul } from "../src/ops/elementwise.js";
import { sum } from "../src/ops/reduce.js";
import { routedMoeForward } from "../src/moe/routed-moe.js";
import { useBackend } from "../src/backends/select.js";
import { setNativeThreads } from "../src/backends/native/index.js";
import { formatTrace, startTrace, stopTrace, type TraceEntry } from "../src/backends/trace.js";
import { intFlag } from "../src/cli/flags.js";
import { median, timeIt } from "./harness.js";
import { BENCH_SHAPE, benchConfig, benchInput, benchWeights, fill } from "./moe-layer.js";

const { values } = parseArgs({ options: { threads: { type: "string", default: "2" }, runs: { type: "string", default: "0" } } });
const threads = intFlag(values.threads, "--threads", 1, 1024);
const runs = intFlag(values.runs, "--runs", 0);

console.log(`backend ${useBackend("auto")}, ${threads} threads, shape ${JSON.stringify(BENCH_SHAPE)}, float32`);
setNativeThreads(threads);
const cfg = benchConfig(BENCH_SHAPE, "float32");
const w = benchWeights(BENCH_SHAPE, "float32");
const x = benchInput(BENCH_SHAPE);
const ct = fill([1, BENCH_SHAPE.T, BENCH_SHAPE.D], 1, 9);
const forward = (): unknown => routedMoeForward(cfg, w, x);
const loss = (xx: Tensor, g: Tensor, a: Tensor, b: Tensor, c: Tensor): Tensor =>
  sum(mul(routedMoeForward(cfg, { gateKernel: g, wi0: a, wi1: b, wo: c }, xx).output, ct));
const step = (): unknown => valueAndGrad(loss)(x, w.gateKernel, w.wi0, w.wi1, w.wo);

function traced(name: string, f: () => unknown): void {
  f(); // warm-up: the first call also loads the addon and compiles the TypeScript loops
  startTrace();
  f();
  const entries = stopTrace();
  console.log(`\n== ${name}\n${formatTrace(entries)}\n${refShare(entries)}`);
}

function refShare(entries: readonly TraceEntry[]): string {
  const total = entries.reduce((s, e) => s + e.ms, 0);
  const ref = entries.filter((e) => e.backend === "ref");
  const ms = ref.reduce((s, e) => s + e.ms, 0);
  const kinds = [...new Set(ref.map((e) => e.prim))].join(", ") || "none";
  return `on ref: ${ms.toFixed(2)} of ${total.toFixed(1)} ms (${((100 * ms) / total).toFixed(2)}%): ${kinds}`;
}

traced("forward", forward);
traced("forward+backward", step);
if (runs > 0) {
  const t = timeIt(forward, runs);
  const runsMs = t.runs_s.map((s) => (s * 1000).toFixed(1)).join(" ");
  console.log(`\nforward: median ${(median(t.runs_s) * 1000).toFixed(1)} ms over ${runs} runs (${runsMs})`);
}
