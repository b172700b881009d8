// The quantized-experts rows: MaxText's int8 config (weights and activations quantized on every call) and served
// weights (quantizeWeights: int8 or int4 codes with float32 scales) with float activations (intmp, weight-only) or
// int8 ones (int8), each timed alternately with the float32 layer on the same weights and tokens; decode's bytes of
// codes streamed against the read-bandwidth probe; and each mode's relative error against the float32 output.
import { nativeBackend } from "../src/backends/native/index.js";
import { Tensor } from "../src/core/tensor.js";
import { moeConfig, type MoeConfig } from "../src/moe/config.js";
import { quantizeWeights } from "../src/moe/quantize-weights.js";
import { routedMoeForward, type RoutedMoeWeights } from "../src/moe/routed-moe.js";
import { quantizeWeight } from "../src/ops/quantized-weight.js";
import type { ExpertWeight } from "../src/moe/experts.js";
import { Prim } from "../src/prims/prims.js";
import { timePaired } from "./harness.js";
import {
  benchConfig,
  benchInput,
  benchKeys,
  benchWeights,
  decodeBesideNote,
  fill,
  servedStep,
  usefulFlops,
  type BenchShape,
} from "./moe-layer.js";
import type { PeakTracker, Probes } from "./probes.js";

export interface QuantRow {
  id: string;
  name: string;
  shape: string;
  dtype: string;
  median_s?: number;
  gflops?: number;
  peakOf?: keyof Probes;
  gbps?: number;
  /** gbps over the read probe read beside the runs */
  besideFraction?: number;
  /** the float32 layer's time over this row's (> 1: faster), timed alternately */
  vsF32?: number;
  note: string;
}

type Mode = "int8" | "int4";

function quantConfig(s: BenchShape, keys: Record<string, unknown>, dtype: "float32" | "bfloat16" = "float32"): MoeConfig {
  return moeConfig(benchKeys(s, "float32", dtype, keys));
}

/** intmp weight-only with `bits`-bit weights (float activations), or int8 (activations quantized per token too). */
const weightOnly = (bits: number): Record<string, unknown> => ({ quantization: "intmp", quant_cfg: { __default__: { w_bits: bits } } });
const INT8 = { quantization: "int8" };
const INT4_A8 = { quantization: "intmp", quant_cfg: { __default__: { w_bits: 4, a_bits: 8 } } };

/** Whether the native backend runs served weights (the QuantizedGmm primitive), with float and with int8 rows. */
export function servedNatively(): { float: boolean; int8: boolean } {
  const nb = nativeBackend();
  if (nb === undefined) return { float: false, int8: false };
  const w = quantizeWeight(fill([1, 8, 8], 1, 1), "int8");
  const gs = new Tensor(Int32Array.of(2), [1], "int32");
  const p = { format: "int8" as const, columns: 8 };
  const float = nb.supports(Prim.QuantizedGmm, [fill([2, 8], 1, 2), w.codes, w.scales, gs], p);
  const rows = new Tensor(Int32Array.of(1, -2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, -8), [2, 8], "int32");
  const int8 = nb.supports(Prim.QuantizedGmm, [rows, w.codes, w.scales, gs, fill([2, 1], 1, 3)], p);
  return { float, int8 };
}

function relError(y: Tensor, ref: Tensor): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.size; i++) {
    num += (y.data[i]! - ref.data[i]!) ** 2;
    den += ref.data[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

export interface QuantBench {
  shape: BenchShape;
  decode: BenchShape;
  runs: number;
  tracker: PeakTracker;
  name: (s: BenchShape) => string;
}

/** The rows; a mode whose kernels this machine runs only on the reference backend is one row saying so. */
export function quantizedRows(b: QuantBench): QuantRow[] {
  const rows: QuantRow[] = [];
  const native = servedNatively();
  const log = (m: string): void => console.error(`[bench] ${m}`);

  // accuracy on the decode shape's tokens (cheap on every backend)
  {
    const s = b.decode;
    const w = benchWeights(s, "float32");
    const x = benchInput(s);
    const ref = routedMoeForward(benchConfig(s, "float32"), w, x).output;
    const errs: string[] = [
      `int8 (MaxText, dynamic) ${relError(routedMoeForward(quantConfig(s, INT8), w, x).output, ref).toExponential(2)}`,
    ];
    for (const [what, mode, keys] of [
      ["int8 weight-only", "int8", weightOnly(8)],
      ["int4 weight-only", "int4", weightOnly(4)],
      ["int4, int8 activations", "int4", INT4_A8],
    ] as const) {
      const served = quantizeWeights(w as RoutedMoeWeights<ExpertWeight>, mode);
      errs.push(`served ${what} ${relError(routedMoeForward(quantConfig(s, keys), served, x).output, ref).toExponential(2)}`);
    }
    log(`accuracy ${errs.join(", ")}`);
    rows.push({
      id: "quantized-accuracy",
      name: "quantized outputs: relative error vs float32",
      shape: b.name(s),
      dtype: "int8 / int4",
      note: `‖y − y_f32‖ / ‖y_f32‖: ${errs.join("; ")}`,
    });
  }

  // MaxText's int8 config: every call quantizes the float32 weights (training semantics)
  {
    const s = b.shape;
    const w = benchWeights(s, "float32");
    const x = benchInput(s);
    const f32 = benchConfig(s, "float32");
    const q = quantConfig(s, INT8);
    log(`forward ${b.name(s)} quantization int8 (weights quantized every call)`);
    const t = timePaired(
      () => routedMoeForward(f32, w, x),
      () => routedMoeForward(q, w, x),
      Math.max(1, b.runs - 2),
    );
    rows.push({
      id: "forward-int8-dynamic",
      name: "moekit forward, int8 (MaxText config)",
      shape: b.name(s),
      dtype: "int8 weights + activations, quantized every call",
      median_s: t.b_s,
      vsF32: 1 / t.ratio,
      note: `${(1 / t.ratio).toFixed(2)}x the float32 layer's speed, timed alternately (${(t.a_s * 1000).toFixed(0)} ms)`,
    });
  }

  // a bfloat16 layer (MaxText's default dtype): its rows are bf16 values, which the int4 decode multiplies in pairs;
  // intmp with a_bits 8: int4 codes times int8 rows (llama.cpp's Q4_0 arithmetic)
  const servedModes: [string, Mode, Record<string, unknown>, boolean, "float32" | "bfloat16", string][] = [
    ["served int8 weights, int8 activations", "int8", INT8, native.int8, "float32", "int8-int8"],
    ["served int8 weights, float activations", "int8", weightOnly(8), native.float, "float32", "int8-intmp"],
    ["served int4 weights, float activations", "int4", weightOnly(4), native.float, "float32", "int4-intmp"],
    ["served int4 weights, int8 activations", "int4", INT4_A8, native.int8, "float32", "int4-intmp-a8"],
    ["served int4 weights, bfloat16 layer", "int4", weightOnly(4), native.float, "bfloat16", "int4-intmp-bf16"],
  ];
  for (const [what, mode, keys, runsNatively, dtype, suffix] of servedModes) {
    if (!runsNatively) {
      rows.push({
        id: `served-${suffix}`,
        name: `moekit forward, ${what}`,
        shape: b.name(b.shape),
        dtype: mode,
        note: "skipped: served weights run on the reference kernels here (no native QuantizedGmm kernel for them)",
      });
      continue;
    }
    for (const s of [b.shape, b.decode]) {
      const decode = s === b.decode;
      const w = benchWeights(s, "float32");
      const served = quantizeWeights(w as RoutedMoeWeights<ExpertWeight>, mode);
      const x = benchInput(s);
      const f32 = benchConfig(s, "float32");
      const q = quantConfig(s, keys, dtype);
      log(`${decode ? "decode" : "forward"} ${b.name(s)} ${what}`);
      const before = b.tracker.read(0.3); // the probes the forward rows are judged against, read beside them
      // decode as a server runs it (jit-replayed), the forward as called
      const [stepF32, stepQ] = decode
        ? [servedStep(f32, w, x), servedStep(q, served, x)]
        : [() => routedMoeForward(f32, w, x), () => routedMoeForward(q, served, x)];
      const t = timePaired(stepF32, stepQ, decode ? b.runs * 5 : b.runs);
      const after = b.tracker.read(0.3);
      const row: QuantRow = {
        id: `${decode ? "decode" : "forward"}-served-${suffix}`,
        name: `moekit ${decode ? "decode" : "forward"}, ${what}`,
        shape: b.name(s),
        dtype: dtype === "bfloat16" ? `${mode}, bf16 activations` : mode,
        median_s: t.b_s,
        vsF32: 1 / t.ratio,
        note: `${(1 / t.ratio).toFixed(2)}x the float32 layer's speed, timed alternately (${(t.a_s * 1000).toFixed(1)} ms)`,
      };
      if (decode) {
        const touched = new Set(Array.from(routedMoeForward(f32, w, x).topKIndices_BSK.data)).size;
        // codes plus the float32 scales (one per output column of each matrix) of the experts the tokens touch
        const bytes = touched * (3 * s.D * s.H * (mode === "int8" ? 1 : 0.5) + (2 * s.H + s.D) * 4);
        row.gbps = bytes / t.b_s / 1e9;
        const beside = b.tracker.timeBesideReads(stepQ, b.runs * 5, bytes).besideFraction;
        if (beside !== undefined) {
          row.besideFraction = beside;
          row.note += `; ${decodeBesideNote(b.tracker, beside, () => routedMoeForward(q, served, x), b.runs * 5, bytes)}`;
        }
      } else {
        row.gflops = usefulFlops(s) / t.b_s / 1e9;
        if (keys === INT8) {
          row.peakOf = "int8Gops";
          // as the float forward rows: against the int8 probe read either side of these runs
          if (before.int8Gops !== undefined && after.int8Gops !== undefined) {
            row.besideFraction = row.gflops / ((before.int8Gops + after.int8Gops) / 2);
            row.note += `; ${(100 * row.besideFraction).toFixed(0)}% of the int8 probe read beside these runs`;
          }
        }
      }
      rows.push(row);
    }
  }
  return rows;
}
