// The layer under benchmark: a Mixtral-style SwiGLU MoE (softmax routing over the top-k, renormalised).
import { uniformInto } from "./uniform.mjs";
import { roundBf16InPlace } from "../src/core/dtype.js";
import { Tensor, zeros } from "../src/core/tensor.js";
import { moeConfig, type MoeConfig } from "../src/moe/config.js";
import { routedMoeForward, type MoeOutput, type RoutedMoeWeights } from "../src/moe/routed-moe.js";
import type { ExpertWeight } from "../src/moe/experts.js";
import { jit } from "../src/backends/jit.js";
import type { PeakTracker } from "./probes.js";

export interface BenchShape {
  T: number;
  D: number;
  H: number;
  E: number;
  K: number;
}

export const BENCH_SHAPE: BenchShape = { T: 4096, D: 1024, H: 1408, E: 64, K: 8 };
export const DECODE_SHAPE: BenchShape = { ...BENCH_SHAPE, T: 8 };

/** Useful forward FLOPs of the expert FFN: T·K·6·D·H (two up-projections and one down). */
export function usefulFlops(s: BenchShape): number {
  return s.T * s.K * 6 * s.D * s.H;
}

/** The bench layer's MaxText keys, plus `extra` (quantization keys); `dtype` is the activations' (MaxText's default is bfloat16). */
export function benchKeys(
  s: BenchShape,
  weightDtype: "float32" | "bfloat16",
  dtype: "float32" | "bfloat16" = "float32",
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    decoder_block: "mixtral",
    num_experts: s.E,
    num_experts_per_tok: s.K,
    emb_dim: s.D,
    moe_mlp_dim: s.H,
    mlp_dim: s.H,
    dtype,
    weight_dtype: weightDtype,
    ...extra,
  };
}

export function benchConfig(s: BenchShape, weightDtype: "float32" | "bfloat16", dtype: "float32" | "bfloat16" = "float32"): MoeConfig {
  return moeConfig(benchKeys(s, weightDtype, dtype));
}

/** Uniform(-a, a) (bench/uniform.mjs) in a tensor of `shape`. */
export function fill(shape: number[], a: number, seed: number, dtype: "float32" | "bfloat16" = "float32"): Tensor {
  const n = shape.reduce((x, y) => x * y, 1);
  const d = uniformInto(zeros([n]).data as Float32Array, a, seed); // as moekit allocates: large arrays in huge pages with the native backend
  if (dtype === "bfloat16") roundBf16InPlace(d);
  return new Tensor(d, shape, dtype);
}

export function benchWeights(s: BenchShape, dtype: "float32" | "bfloat16"): RoutedMoeWeights {
  const uD = Math.sqrt(3 / s.D);
  const uH = Math.sqrt(3 / s.H);
  return {
    gateKernel: fill([s.D, s.E], uD, 1),
    wi0: fill([s.E, s.D, s.H], uD, 2, dtype),
    wi1: fill([s.E, s.D, s.H], uD, 3, dtype),
    wo: fill([s.E, s.H, s.D], uH, 4, dtype),
  };
}

/**
 * The layer's forward on `x` as a server runs it, jit-replayed (recorded at the first call): the rows that time small
 * batches (decode, the roofline rows) time the kernels, not the JavaScript around them.
 */
export function servedStep(cfg: MoeConfig, w: RoutedMoeWeights<ExpertWeight>, x: Tensor): () => MoeOutput {
  const step = jit((t: Tensor) => routedMoeForward(cfg, w, t));
  return () => step(x);
}

/**
 * A decode row's note: `replayed` (the jit-replayed step's fraction of the read probe beside it, the target's figure),
 * then the same step called as it is (`eager`), timed here beside the probe for comparison only.
 */
export function decodeBesideNote(tracker: PeakTracker, replayed: number, eager: () => unknown, runs: number, bytes: number): string {
  const called = tracker.timeBesideReads(eager, runs, bytes).besideFraction;
  const as = called === undefined ? "" : ` (called as it is: ${(100 * called).toFixed(0)}%)`;
  return `${(100 * replayed).toFixed(0)}% of the read probe read beside each run (median); jit-replayed${as}`;
}

export function benchInput(s: BenchShape): Tensor {
  return fill([1, s.T, s.D], Math.sqrt(3), 5);
}
