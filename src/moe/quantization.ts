// Which of the layer's matmuls a quantized config quantizes, and how (QUANTIZATION.md's table).
import type { DotQuant, GmmQuant, OperandQuant } from "../ops/quantize.js";
import type { MoeConfig } from "./config.js";

const AQT8: OperandQuant = { bits: 8, flavour: "aqt" };
const QWIX8: OperandQuant = { bits: 8, flavour: "qwix" };

const aqt = (bits: number | null | undefined): OperandQuant | undefined => (bits == null ? undefined : { bits, flavour: "aqt" });

/**
 * The AQT dot_general of the dense matmuls (gate, shared experts' MlpBlock, dense expert einsums): int8 quantizes
 * both operands; intmp quantizes the weights (rhs) to w_bits and the activations (lhs) to a_bits when given.
 */
export function denseQuant(cfg: MoeConfig): DotQuant | undefined {
  if (cfg.quantization === "int8") return { lhs: AQT8, rhs: AQT8 };
  if (cfg.quantization !== "intmp") return undefined;
  const e = cfg.quantCfg!.__default__!;
  return { lhs: aqt(e.a_bits), rhs: aqt(e.w_bits) };
}

/** The dense capacity path's dispatch and combine einsums: quantized as dense matmuls in training, plain in inference. */
export function dispatchQuant(cfg: MoeConfig): DotQuant | undefined {
  return cfg.modelCallMode === "inference" ? undefined : denseQuant(cfg);
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
