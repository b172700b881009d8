// Which of the layer's matmuls a quantized config quantizes, and how (QUANTIZATION.md's table).
import { foldIn, uniform, type Key } from "../nn/random.js";
import type { DotQuant, GmmQuant, GradQuant, OperandQuant } from "../ops/quantize.js";
import type { MoeConfig } from "./config.js";

/** The layer's quantized matmuls, each drawing its stochastic-rounding noise from its own key. */
export enum QuantSite {
  Gate = 0,
  Wi0 = 1,
  Wi1 = 2,
  Wo = 3,
  Dispatch = 4,
  Combine = 5,
  /** the shared MLP's matmuls: SharedMlp + i */
  SharedMlp = 16,
}

/** The key of one matmul site, from the forward's quantKey. */
export const siteKey = (key: Key | undefined, site: number): Key | undefined => (key === undefined ? undefined : foldIn(key, site));

/** int8's backward (AQT config v3): 8-bit dlhs with stochastic rounding; drhs quantized when quantization_local_shard_count ≠ 0. */
function int8Grad(cfg: MoeConfig, key: Key): GradQuant {
  return {
    bits: 8,
    drhs: cfg.quantizationLocalShardCount !== 0,
    noise: (shape, product) => uniform(foldIn(key, product === "dlhs" ? 0 : 1), shape, -0.5, 0.5, "float64"),
  };
}

const AQT8: OperandQuant = { bits: 8, flavour: "aqt" };
const QWIX8: OperandQuant = { bits: 8, flavour: "qwix" };

const aqt = (bits: number | null | undefined): OperandQuant | undefined => (bits == null ? undefined : { bits, flavour: "aqt" });

/**
 * The AQT dot_general of the dense matmuls (gate, shared experts' MlpBlock, dense expert einsums): int8 quantizes
 * both operands; intmp quantizes the weights (rhs) to w_bits and the activations (lhs) to a_bits when given. With a
 * key (training), int8's gradient products are quantized too (stochastic rounding drawn from it); without one,
 * gradients are straight-through; under intmp, float gradients with the dequantized weights in the input gradient.
 */
export function denseQuant(cfg: MoeConfig, key?: Key): DotQuant | undefined {
  if (cfg.quantization === "int8") return { lhs: AQT8, rhs: AQT8, grad: key === undefined ? undefined : int8Grad(cfg, key) };
  if (cfg.quantization !== "intmp") return undefined;
  const e = cfg.quantCfg!.__default__!;
  return { lhs: aqt(e.a_bits), rhs: aqt(e.w_bits), dequantizedRhsGrad: true };
}

/** The dense capacity path's dispatch and combine einsums: quantized as dense matmuls in training, plain in inference. */
export function dispatchQuant(cfg: MoeConfig, key?: Key): DotQuant | undefined {
  return cfg.modelCallMode === "inference" ? undefined : denseQuant(cfg, key);
}

/**
 * The sparse path's grouped matmuls. int8 through megablox or tokamax gmm: qwix, rows per row, weights per column
 * shared by the (local) experts; int8 through ragged_dot: not quantized. intmp (MaxText fails here): the dense
 * weight-only rule, per expert and column, as moekit's extension.
 */
export function sparseQuant(cfg: MoeConfig): GmmQuant | undefined {
  if (cfg.quantization === "int8")
    return cfg.megablox || cfg.useTokamaxGmm ? { lhs: QWIX8, rhs: QWIX8, rhsSharedOverGroups: true } : undefined;
  return denseQuant(cfg);
}

/**
 * Serve mode (weights held quantized): the bits the activations are quantized to at run time, per row over the
 * contraction, or undefined (weight-only). int8 quantizes them to 8 bits (MaxText's serve mode); intmp only with
 * a_bits; a float config runs weight-only, which is what `moekit quantize` writes (intmp with w_bits).
 */
export function servedLhsBits(cfg: MoeConfig): number | undefined {
  if (cfg.quantization === "int8") return 8;
  return cfg.quantization === "intmp" ? (cfg.quantCfg!.__default__!.a_bits ?? undefined) : undefined;
}
