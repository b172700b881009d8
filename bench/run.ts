// `npm run bench`: the MoE layer at the bench shape against peers measured in the same run, and against the
// machine's peak measured by probes in the same run. Results: a table on stdout; --json FILE for tracking.
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Tensor } from "../src/core/tensor.js";
import { AdamW } from "../src/optim/optimizers.js";
import { valueAndGrad } from "../src/autodiff/grad.js";
import { recycle, releaseRecycled } from "../src/core/pool.js";
import { mul } from "../src/ops/elementwise.js";
import { sum } from "../src/ops/reduce.js";
import { routedMoeForward, type RoutedMoeWeights } from "../src/moe/routed-moe.js";
import { runtimeInfo, useBackend } from "../src/backends/select.js";
import { setNativeThreads } from "../src/backends/native/index.js";
import { intFlag } from "../src/cli/flags.js";
import { PeakTracker, type Probes, type TimedBlock } from "./probes.js";
import { median, runPeer, timePaired, withGc, type PeerResult } from "./harness.js";
import { checkTargets, type TargetRow } from "./targets.js";
import { quantizedRows } from "./quantized.js";
import {
  BENCH_SHAPE,
  DECODE_SHAPE,
  benchConfig,
  benchInput,
  benchWeights,
  decodeBesideNote,
  fill,
  servedStep,
  usefulFlops,
  type BenchShape,
} from "./moe-layer.js";

const { values } = parseArgs({
  options: {
    json: { type: "string" },
    threads: { type: "string", default: "2" },
    runs: { type: "string", default: "3" },
    quick: { type: "boolean" },
    "no-peers": { type: "boolean" },
    "no-backward": { type: "boolean" },
    "no-quantized": { type: "boolean" },
  },
});
const threads = intFlag(values.threads, "--threads", 1, 1024);
const runs = intFlag(values.runs, "--runs", 1);
const root = join(import.meta.dirname, "..");

interface Row extends TargetRow {
  name: string;
  shape: string;
  dtype: string;
  threads: number;
  median_s?: number;
  gflops?: number;
  peakFraction?: number;
  gbps?: number;
  bandwidthFraction?: number;
  vsTorch?: number;
  vsOrt?: number;
  /** ratio against the expert matmuls alone through numpy's BLAS (bench/peers/blas_gemm.py) */
  vsBlas?: number;
  note?: string;
  /** which probe `peakFraction` is taken against (filled in once the run's peaks are known) */
  peakOf?: keyof Probes;
}

const backend = useBackend("auto");
setNativeThreads(threads);
const info = runtimeInfo();
console.error(`[bench] backend ${backend} (${info.native.isa ?? "no native"}), ${threads} threads`);
const tracker = new PeakTracker();
console.error(`[bench] probes: ${JSON.stringify(tracker.read())}`);

const shape: BenchShape = values.quick === true ? { T: 512, D: 256, H: 352, E: 16, K: 4 } : BENCH_SHAPE;
const shapeName = (s: BenchShape): string => `T=${s.T} D=${s.D} H=${s.H} E=${s.E} K=${s.K}`;
const rows: Row[] = [];

function forwardRow(
  s: BenchShape,
  dtype: "float32" | "bfloat16",
  n: number,
): { row: Row; w: RoutedMoeWeights; x: Tensor; f: () => unknown; peakOf: keyof Probes; blocks: TimedBlock[] } {
  const cfg = benchConfig(s, dtype);
  const w = benchWeights(s, dtype);
  const x = benchInput(s);
  console.error(`[bench] forward ${shapeName(s)} weights ${dtype}`);
  const f = (): unknown => routedMoeForward(cfg, w, x);
  // bf16 weights: against the probe of the path the kernels use (AMX tiles, or vdpbf16ps dot products)
  const bf16Path = runtimeInfo().native.bf16Path;
  const peakOf: keyof Probes = dtype === "bfloat16" ? (bf16Path === "amx" ? "amxGflops" : "bf16Gflops") : "fp32Gflops";
  const t = tracker.timeBetweenReadings(f, n, peakOf);
  console.error(`[bench]   -> ${(t.median_s * 1000).toFixed(1)} ms, ${(usefulFlops(s) / t.median_s / 1e9).toFixed(0)} GFLOP/s`);
  const row: Row = {
    id: dtype === "float32" ? "forward-f32" : "forward-bf16",
    name: "moekit forward",
    shape: shapeName(s),
    dtype: `f32 act, ${dtype} weights`,
    threads,
    peakOf,
  };
  setTime(row, s, t.runs_s);
  setBeside(row, s, dtype, [t]);
  return { row, w, x, f, peakOf, blocks: [t] };
}

/**
 * The row's fraction of the probe beside: the median over its blocks of runs of (the block's GFLOP/s ÷ the probe
 * read around that block), so that it covers the same runs as the row's median time.
 */
function setBeside(row: Row, s: BenchShape, dtype: "float32" | "bfloat16", blocks: TimedBlock[]): void {
  const fractions = blocks.flatMap((b) => (b.beside !== undefined ? [usefulFlops(s) / b.median_s / 1e9 / b.beside] : []));
  const notes: string[] = [];
  if (fractions.length > 0) {
    row.besideFraction = median(fractions);
    const over = fractions.length > 1 ? ` (median of ${fractions.length} blocks of runs)` : "";
    notes.push(`${(100 * row.besideFraction).toFixed(0)}% of the probe read beside these runs${over}`);
  }
  if (dtype === "bfloat16") notes.push(`bf16 path ${runtimeInfo().native.bf16Path ?? "-"}`);
  if (notes.length > 0) row.note = notes.join("; ");
}

function setTime(row: Row, s: BenchShape, times: number[]): void {
  row.median_s = median(times);
  row.gflops = usefulFlops(s) / row.median_s / 1e9;
}

/** A peer's result on stderr: its median (with the field `detail` of its JSON line), or why it was skipped. */
function logged(r: PeerResult, detail?: string): PeerResult {
  const extra = detail !== undefined ? ` (${String(r[detail])})` : "";
  console.error(
    `[bench]   -> ${r.median_s !== undefined ? `${(r.median_s * 1000).toFixed(1)} ms${extra}` : `skipped: ${r.skipped ?? "?"}`}`,
  );
  return r;
}

function torch(s: BenchShape, dtype: string, backward = false): PeerResult {
  console.error(`[bench] peer pytorch ${dtype}${backward ? " fwd+bwd" : ""}`);
  // the HF-style loop's backward is slow: one timed run, bounded
  const args = [
    join(root, "bench/peers/torch_moe.py"),
    ...[s.T, s.D, s.H, s.E, s.K].map(String),
    dtype,
    String(threads),
    String(backward ? 1 : runs),
  ];
  if (backward) args.push("backward");
  const r = runPeer(
    "pytorch",
    "/usr/bin/python3",
    args,
    { OMP_WAIT_POLICY: "PASSIVE", OMP_NUM_THREADS: String(threads) },
    backward ? 300 : 600,
  );
  return logged(r);
}

function ort(s: BenchShape, dtype: string): PeerResult {
  const script = join(root, "bench/peers/ort/moe.mjs");
  console.error(`[bench] peer onnxruntime ${dtype}`);
  const r = runPeer(
    "onnxruntime",
    process.execPath,
    [script, ...[s.T, s.D, s.H, s.E, s.K].map(String), dtype, String(threads), String(runs)],
    {},
    600,
  );
  return logged(r);
}

/** llama.cpp's MoE graph in ggml with Q8_0 (int8) or Q4_0 (int4) experts (bench/peers/ggml, built by its setup.sh). */
function ggml(s: BenchShape, mode: "int8" | "int4", n: number): PeerResult {
  const exe = join(root, "bench/peers/ggml/moe");
  const type = mode === "int8" ? "q8_0" : "q4_0";
  console.error(`[bench] peer ggml ${type} ${shapeName(s)}`);
  if (!existsSync(exe)) return logged({ peer: "ggml", skipped: "not built: run bench/peers/ggml/setup.sh" });
  const r = runPeer("ggml", exe, [...[s.T, s.D, s.H, s.E, s.K].map(String), type, String(threads), String(n)], {}, 600);
  return logged(r, "weights");
}

/** The layer's expert matmuls alone through numpy's BLAS: `python3` on PATH, or MOEKIT_BENCH_PYTHON. */
function blas(s: BenchShape): PeerResult {
  console.error("[bench] peer numpy BLAS (expert matmuls only)");
  const py = process.env.MOEKIT_BENCH_PYTHON ?? "python3";
  const args = [join(root, "bench/peers/blas_gemm.py"), ...[s.T, s.D, s.H, s.E, s.K].map(String), String(threads), String(runs)];
  const n = String(threads);
  const r = runPeer("blas", py, args, { OPENBLAS_NUM_THREADS: n, OMP_NUM_THREADS: n, MKL_NUM_THREADS: n }, 600);
  return logged(r, "blas");
}

const peers: PeerResult[] = [];

/** Two runs of one peer as one result: the median over both runs' times (or whichever ran). */
function combineRuns(a: PeerResult, b: PeerResult): PeerResult {
  const ra = Array.isArray(a.runs_s) ? (a.runs_s as number[]) : [];
  const rb = Array.isArray(b.runs_s) ? (b.runs_s as number[]) : [];
  if (ra.length === 0 || rb.length === 0) return b.median_s !== undefined ? b : a;
  const all = [...ra, ...rb];
  return { ...b, median_s: median(all), runs_s: all, runs: all.length };
}
const ratio = (p: PeerResult, ours: number | undefined): number | undefined =>
  p.median_s !== undefined && ours !== undefined ? p.median_s / ours : undefined;

for (const dtype of ["float32", "bfloat16"] as const) {
  const { row, w, x, f: forward, peakOf, blocks } = forwardRow(shape, dtype, runs);
  // each later block of our runs between two probe readings too, without a warm-up call
  const timedBlock = (): void => {
    blocks.push(tracker.timeBetweenReadings(forward, runs, peakOf, 0));
  };
  let bp: PeerResult | undefined;
  if (values["no-peers"] !== true) {
    // ours, onnxruntime, ours, PyTorch, onnxruntime, ours: each median spans the same stretch of time
    const op1 = ort(shape, dtype);
    timedBlock();
    const tp = torch(shape, dtype);
    peers.push({ ...tp, dtype });
    const op = combineRuns(op1, ort(shape, dtype));
    peers.push({ ...op, dtype });
    timedBlock();
    if (dtype === "float32") {
      bp = blas(shape);
      peers.push({ ...bp, dtype });
      timedBlock();
    }
    const times = blocks.flatMap((b) => b.runs_s);
    setTime(row, shape, times);
    setBeside(row, shape, dtype, blocks);
    console.error(`[bench]   forward over ${times.length} runs around the peers -> ${(row.median_s! * 1000).toFixed(1)} ms`);
    row.vsTorch = ratio(tp, row.median_s);
    row.vsOrt = ratio(op, row.median_s);
    if (bp !== undefined) row.vsBlas = ratio(bp, row.median_s);
  }
  rows.push(row);
  if (bp?.median_s !== undefined) {
    rows.push({
      name: "peer: expert matmuls alone via numpy BLAS",
      shape: shapeName(shape),
      dtype: "f32",
      threads,
      median_s: bp.median_s,
      gflops: usefulFlops(shape) / bp.median_s / 1e9,
      peakOf: "fp32Gflops",
      note: `${String(bp.blas)} (numpy ${String(bp.numpy)}), ${String(bp.rows_per_expert)} rows per expert; no routing, gather, activation or combine`,
    });
  }
  if (dtype === "float32" && values["no-backward"] !== true) {
    const cfg = benchConfig(shape, dtype);
    const ct = fill([1, shape.T, shape.D], 1, 9);
    const f = (xx: Tensor, g: Tensor, a: Tensor, b: Tensor, c: Tensor): Tensor =>
      sum(mul(routedMoeForward(cfg, { gateKernel: g, wi0: a, wi1: b, wo: c }, xx).output, ct));
    console.error(`[bench] forward+backward ${shapeName(shape)}`);
    // timed alternately with the forward: the ratio compares runs made seconds apart. Two variants: gradients
    // left to the GC (fresh storage every step), and recycled once used, as a training loop does after its
    // optimizer step (the kernels then write into memory that is already mapped)
    const step = (): ReturnType<ReturnType<typeof valueAndGrad>> => valueAndGrad(f)(x, w.gateKernel, w.wi0, w.wi1, w.wo);
    // fresh gradients: each side collects its own garbage inside its timing (a step's ~1 GB of gradients, left to the
    // GC, was freed while the next forward ran and slowed it: fresh read below recycled, run BE)
    const plain = timePaired(withGc(forward), withGc(step), runs);
    console.error(
      `[bench]   -> ${(plain.b_s * 1000).toFixed(1)} ms, ${plain.ratio.toFixed(2)}x the forward timed beside it (${(plain.a_s * 1000).toFixed(1)} ms)`,
    );
    const t = timePaired(forward, () => recycle(step().grads), runs);
    console.error(
      `[bench]   recycling the gradients -> ${(t.b_s * 1000).toFixed(1)} ms, ${t.ratio.toFixed(2)}x the forward timed beside it (${(t.a_s * 1000).toFixed(1)} ms)`,
    );
    releaseRecycled();
    const r: Row = {
      id: "forward+backward",
      name: "moekit forward+backward",
      shape: shapeName(shape),
      dtype: "f32",
      threads,
      peakOf: "fp32Gflops",
      median_s: t.b_s,
      gflops: (3 * usefulFlops(shape)) / t.b_s / 1e9,
      ratio: t.ratio,
      ratioPlain: plain.ratio,
    };
    r.note = `${t.ratio.toFixed(2)}x forward (interleaved; forward ${(t.a_s * 1000).toFixed(0)} ms there), gradients recycled; ${plain.ratio.toFixed(2)}x (${(plain.b_s * 1000).toFixed(0)} ms) without`;
    if (values["no-peers"] !== true) {
      const tb = torch(shape, dtype, true);
      peers.push({ ...tb, dtype, backward: true });
      r.vsTorch = ratio(tb, r.median_s);
    }
    rows.push(r);

    // a whole training step: forward+backward, AdamW in place over copies of the weights, gradients recycled
    const params = [w.gateKernel, w.wi0, w.wi1, w.wo].map((p) => new Tensor(Float32Array.from(p.data as Float32Array), p.shape, "float32"));
    const opt = new AdamW(params, { learningRate: 1e-6, weightDecay: 0 });
    const train = (): void => {
      const { grads } = valueAndGrad(f)(x, ...(params as [Tensor, Tensor, Tensor, Tensor]));
      opt.step(grads.slice(1));
      recycle(grads);
    };
    console.error(`[bench] training step (forward+backward+AdamW) ${shapeName(shape)}`);
    const ts = timePaired(forward, train, runs);
    releaseRecycled();
    console.error(`[bench]   -> ${(ts.b_s * 1000).toFixed(1)} ms, ${ts.ratio.toFixed(2)}x the forward timed beside it`);
    rows.push({
      name: "moekit training step",
      shape: shapeName(shape),
      dtype: "f32",
      threads,
      median_s: ts.b_s,
      note: `forward+backward+AdamW (in place over ${(params.reduce((n, p) => n + p.size, 0) / 1e6).toFixed(0)}M weights), gradients recycled: ${ts.ratio.toFixed(2)}x the forward timed beside it`,
    });
  }
}

// decode: weights streamed once; bytes = experts touched × 3·D·H × bytes per weight
for (const dtype of ["float32", "bfloat16"] as const) {
  const s = values.quick === true ? { ...shape, T: 8 } : DECODE_SHAPE;
  const cfg = benchConfig(s, dtype);
  const w = benchWeights(s, dtype);
  const x = benchInput(s);
  const touched = new Set(Array.from(routedMoeForward(cfg, w, x).topKIndices_BSK.data)).size;
  console.error(`[bench] decode ${shapeName(s)} weights ${dtype} (${touched} experts touched)`);
  const bytes = touched * 3 * s.D * s.H * (dtype === "bfloat16" ? 2 : 4);
  const t = tracker.timeBesideReads(servedStep(cfg, w, x), runs * 5, bytes);
  const gbps = bytes / t.median_s / 1e9;
  const besideFraction = t.besideFraction;
  rows.push({
    id: dtype === "float32" ? "decode-f32" : "decode-bf16",
    name: "moekit decode",
    shape: shapeName(s),
    dtype: `f32 act, ${dtype} weights`,
    threads,
    median_s: t.median_s,
    gbps,
    ...(besideFraction !== undefined
      ? {
          besideFraction,
          note: decodeBesideNote(tracker, besideFraction, () => routedMoeForward(cfg, w, x), runs * 5, bytes),
        }
      : {}),
  });
}

// the float32 forward against its roofline at several batch sizes: the larger of (bytes of the experts the tokens
// touch ÷ the read probe) and (useful FLOPs ÷ the FMA probe), both probes read beside the runs
for (const T of values.quick === true ? [8, 64] : [8, 64, 256, 4096]) {
  const s = { ...shape, T };
  const cfg = benchConfig(s, "float32");
  const w = benchWeights(s, "float32");
  const x = benchInput(s);
  const touched = new Set(Array.from(routedMoeForward(cfg, w, x).topKIndices_BSK.data)).size;
  console.error(`[bench] roofline ${shapeName(s)} (${touched} experts touched)`);
  // the read probe beside each run (timeBesideReads), the FMA probe before and after them all
  const bytes = touched * 3 * s.D * s.H * 4;
  const fmaBefore = tracker.read(0.3).fp32Gflops;
  // called as it is, as issue 13's "forward" reads (the decode rows time the jit-replayed serving step)
  const t = tracker.timeBesideReads(() => routedMoeForward(cfg, w, x), T <= 256 ? runs * 5 : runs, bytes);
  const fmaAfter = tracker.read(0.3).fp32Gflops;
  // the higher reading: a low one would lower the roof and flatter the ratio (run BB's T=4096 read 0.87x)
  const fma = fmaBefore !== undefined && fmaAfter !== undefined ? Math.max(fmaBefore, fmaAfter) : undefined;
  const flopsS = fma !== undefined ? usefulFlops(s) / (fma * 1e9) : undefined;
  const roofs = flopsS !== undefined ? t.readsGBps.map((bw) => Math.max(bytes / (bw * 1e9), flopsS)) : [];
  const roofline = roofs.length > 0 ? median(roofs) : undefined;
  const ratio = roofs.length > 0 ? median(t.runs_s.map((r, i) => r / roofs[i]!)) : undefined;
  const bytesBound = roofs.filter((r) => r > flopsS!).length * 2 > roofs.length;
  rows.push({
    id: `roofline-T${T}`,
    name: "moekit forward vs its roofline",
    shape: shapeName(s),
    dtype: "f32",
    threads,
    median_s: t.median_s,
    gflops: usefulFlops(s) / t.median_s / 1e9,
    ...(ratio !== undefined ? { rooflineRatio: ratio } : {}),
    note:
      ratio === undefined || roofline === undefined
        ? "no probes"
        : `${ratio.toFixed(2)}x its roofline, median over runs (${(roofline * 1000).toFixed(1)} ms: ${bytesBound ? "weight bytes" : "FLOPs"}-bound); called as it is`,
  });
}

// MaxText's default dtype: bfloat16 activations (every op rounded), float32 weights, on bfloat16 tokens; timed
// alternately with the float32 layer on the same weights (prefill at the bench shape, and decode)
for (const s of [shape, values.quick === true ? { ...shape, T: 8 } : DECODE_SHAPE]) {
  const w = benchWeights(s, "float32");
  const tokens = fill([1, s.T, s.D], Math.sqrt(3), 5, "bfloat16");
  const x32 = new Tensor(Float32Array.from(tokens.data), tokens.shape, "float32");
  const f32 = benchConfig(s, "float32");
  const bf16 = benchConfig(s, "float32", "bfloat16");
  console.error(`[bench] bfloat16 layer ${shapeName(s)} against the float32 layer`);
  const t = timePaired(
    () => routedMoeForward(f32, w, x32),
    () => routedMoeForward(bf16, w, tokens),
    s.T <= 8 ? runs * 5 : runs,
  );
  console.error(`[bench]   -> ${(t.b_s * 1000).toFixed(2)} ms, ${t.ratio.toFixed(2)}x the float32 layer (${(t.a_s * 1000).toFixed(2)} ms)`);
  rows.push({
    id: s.T <= 8 ? "decode-bf16-layer" : "forward-bf16-layer",
    name: s.T <= 8 ? "moekit decode, bfloat16 layer" : "moekit forward, bfloat16 layer",
    shape: shapeName(s),
    dtype: "bf16 act, f32 weights",
    threads,
    median_s: t.b_s,
    gflops: usefulFlops(s) / t.b_s / 1e9,
    ratio: t.ratio,
    note: `${t.ratio.toFixed(2)}x the float32 layer timed alternately (${(t.a_s * 1000).toFixed(2)} ms), same weights and tokens`,
  });
}

// quantized experts: MaxText's int8 config and served int8 / int4 weights (bench/quantized.ts)
if (values["no-quantized"] !== true) {
  const decode = values.quick === true ? { ...shape, T: 8 } : DECODE_SHAPE;
  for (const q of quantizedRows({ shape, decode, runs, tracker, name: shapeName })) rows.push({ ...q, threads });
  // onnxruntime's QMoE runs the same dequantized weights with float activations: the served weight-only rows' peer
  if (values["no-peers"] !== true) {
    for (const mode of ["int8", "int4"] as const)
      for (const s of [shape, decode]) {
        const p = ort(s, mode);
        peers.push({ ...p, peer: "onnxruntime com.microsoft.QMoE", dtype: mode, shape: shapeName(s) });
        const row = rows.find((r) => r.id === `${s === decode ? "decode" : "forward"}-served-${mode}-intmp`);
        if (row !== undefined) row.vsOrt = ratio(p, row.median_s);
      }
    // ggml quantizes the activations to int8 blocks too: beside the int8 x int8 and int4 x int8 rows, and the int4
    // weight-only ones
    for (const [mode, ids] of [
      ["int8", ["served-int8-int8"]],
      ["int4", ["served-int4-intmp-a8", "served-int4-intmp", "served-int4-intmp-bf16"]],
    ] as const)
      for (const s of [shape, decode]) {
        const p = ggml(s, mode, s === decode ? runs * 5 : runs);
        const label = `ggml ${mode === "int8" ? "Q8_0" : "Q4_0"}`;
        peers.push({ ...p, peer: `${label} (llama.cpp's MoE graph)`, dtype: mode, shape: shapeName(s) });
        for (const id of ids) {
          const row = rows.find((r) => r.id === `${s === decode ? "decode" : "forward"}-${id}`);
          const v = ratio(p, row?.median_s);
          if (row !== undefined && v !== undefined)
            row.note = `${row.note ?? ""}; vs ${label} (${(p.median_s! * 1000).toFixed(1)} ms): ${v.toFixed(2)}x`;
        }
      }
  }
}

// fractions against the run's highest probe readings
const probes = tracker.peak;
for (const r of rows) {
  const peak = r.peakOf !== undefined ? probes[r.peakOf] : undefined;
  if (peak !== undefined && r.gflops !== undefined) r.peakFraction = r.gflops / peak;
  if (probes.readGBps !== undefined && r.gbps !== undefined) r.bandwidthFraction = r.gbps / probes.readGBps;
}

const pct = (v: number | undefined): string => (v === undefined ? "-" : `${(100 * v).toFixed(0)}%`);
const x2 = (v: number | undefined): string => (v === undefined ? "-" : `${v.toFixed(2)}x`);
console.log(`\nmoekit bench — backend ${backend} (${info.native.isa ?? "-"}), ${threads} threads, median of ${runs}`);
console.log(
  `machine probes (highest of ${tracker.readings} readings in this run): fp32 FMA ${probes.fp32Gflops?.toFixed(0) ?? "-"} GFLOP/s, bf16 dot (vdpbf16ps) ${probes.bf16Gflops?.toFixed(0) ?? "-"} GFLOP/s, int8 dot (vpdpbusd) ${probes.int8Gops?.toFixed(0) ?? "-"} GOP/s, AMX-BF16 ${probes.amxGflops?.toFixed(0) ?? "-"} GFLOP/s, read ${probes.readGBps?.toFixed(1) ?? "-"} GB/s`,
);
console.log(`GEMM blocking: ${info.native.blocking ?? "-"} (${info.native.tuning ?? "-"})`);
console.log('("of peak": fp32 rows against the FMA probe, bf16-weight rows against the probe of the bf16 path in use)\n');
console.log(
  "| run | shape | dtype | ms | GFLOP/s | of peak | GB/s | of bandwidth | vs PyTorch | vs onnxruntime | vs BLAS matmuls | note |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(
    `| ${r.name} | ${r.shape} | ${r.dtype} | ${r.median_s === undefined ? "-" : (r.median_s * 1000).toFixed(1)} | ${r.gflops?.toFixed(0) ?? "-"} | ${pct(r.peakFraction)} | ${r.gbps?.toFixed(1) ?? "-"} | ${pct(r.bandwidthFraction)} | ${x2(r.vsTorch)} | ${x2(r.vsOrt)} | ${x2(r.vsBlas)} | ${r.note ?? ""} |`,
  );
}
// a capped ISA lowers the FMA probe with the kernels, and a forced bf16 path hides the AMX or vdpbf16ps target
const capped = ["MOEKIT_NATIVE_ISA", "MOEKIT_NATIVE_BF16"].filter((k) => (process.env[k] ?? "") !== "");
const targets = capped.length > 0 ? [] : checkTargets(rows, info.native.bf16Path, probes);
if (capped.length > 0)
  console.log(`\ntargets: no verdict with ${capped.join(" and ")} set (the probes and paths are not the machine's best)`);
console.log(
  `\ntargets of the near-peak and quantized-experts issues (fractions of the probe read beside, of the highest reading in parentheses)${values.quick === true ? " — set for the bench shape, not the --quick one" : ""}:`,
);
for (const c of targets) console.log(`  ${c.met === undefined ? "-   " : c.met ? "met " : "NOT "} ${c.target}: ${c.measured}`);
console.log("\npeers:");
for (const p of peers)
  console.log(
    `  ${p.peer} ${String(p.dtype)}${p.backward === true ? " fwd+bwd" : ""}${p.shape !== undefined ? ` ${String(p.shape)}` : ""}: ${p.median_s !== undefined ? `${(p.median_s * 1000).toFixed(1)} ms` : `skipped (${p.skipped ?? "?"})`}`,
  );
if (values.json !== undefined) {
  writeFileSync(
    values.json,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        backend,
        isa: info.native.isa,
        blocking: info.native.blocking,
        tuning: info.native.tuning,
        threads,
        runs,
        probes,
        rows,
        peers,
        targets,
      },
      null,
      2,
    ),
  );
  console.error(`[bench] wrote ${values.json}`);
}
