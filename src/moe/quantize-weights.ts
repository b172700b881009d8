// Serve mode's storage: a layer's routed expert weights quantized once (int8, or int4 packed two per byte), each
// with float32 scales per (expert, column); the gate, biases and shared MLP stay float (the gate a read-only copy).
import { MoeError } from "../core/errors.js";
import { Tensor } from "../core/tensor.js";
import { servedWeight } from "../ops/quantize.js";
import {
  checkQuantizeMode,
  isQuantizedWeight,
  quantizeWeight,
  quantizedStorage,
  servingWeights,
  type QuantizedWeight,
  type QuantizeMode,
} from "../ops/quantized-weight.js";
import type { ExpertWeight } from "./experts.js";
import type { RoutedMoeWeights } from "./routed-moe.js";

export type { QuantizeMode };

/**
 * The routed experts' wi_0, wi_1 and wo quantized for serving (AQT's weight-only rule per (expert, column), as
 * `quantization: "intmp"` quantizes them at run time); the other weights are kept as they are, and weights already
 * held in `mode` too (another format is refused). The gate kernel is a copy marked read-only (servedWeight): a
 * quantized gate is quantized on its first call only.
 *
 * @example const served = quantizeWeights(moe.weights, "int8"); routedMoeForward(intmpConfig, served, x)
 */
export function quantizeWeights(w: RoutedMoeWeights<ExpertWeight>, mode: QuantizeMode): RoutedMoeWeights<QuantizedWeight> {
  checkQuantizeMode(mode, "quantizeWeights");
  const q = (t: ExpertWeight): QuantizedWeight => {
    if (!isQuantizedWeight(t)) return quantizeWeight(t, mode);
    if (t.format !== mode) throw new MoeError(`[quantizeWeights] weights held as ${t.format} are not requantized to ${mode}`);
    return t;
  };
  const g = w.gateKernel;
  const gate = new Tensor(g.bf16Bits?.slice() ?? g.data.slice(), g.shape, g.dtype);
  const [wi0, wi1, wo] = servingWeights([q(w.wi0), q(w.wi1), q(w.wo)]) as [QuantizedWeight, QuantizedWeight, QuantizedWeight];
  return { ...w, gateKernel: servedWeight(gate), wi0, wi1, wo };
}

/** Bytes held by the quantized expert weights (codes and scales), and per expert weight element. */
export function servedExpertBytes(w: RoutedMoeWeights<QuantizedWeight>): { bytes: number; perWeight: number } {
  const { bytes, weights } = quantizedStorage([w.wi0, w.wi1, w.wo]);
  return { bytes, perWeight: bytes / weights };
}
