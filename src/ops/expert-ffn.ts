// The fused expert FFN op: validates, then binds ExpertFfn (prims/expert-ffn.ts states the math), asking for the
// residuals only when a backward pass can follow; expert weights held quantized bind its served variant.
import { UnsupportedError } from "../core/errors.js";
import type { Tensor } from "../core/tensor.js";
import { bind } from "../autodiff/bind.js";
import { isRecording } from "../autodiff/graph.js";
import { expertFfnInputList, FFN_ACTIVATIONS, type ExpertFfnParams, type FfnActivation, type FfnDtype } from "../prims/expert-ffn.js";
import { Prim } from "../prims/prims.js";
import { isQuantizedWeight, type QuantizedWeight } from "./quantized-weight.js";

export type { FfnActivation, FfnDtype };

export interface ExpertFfnArgs {
  /** [T,D] float32 tokens */
  x_TD: Tensor;
  /** [T·K] int32: sorted row r holds routed choice order_R[r] = t·K + k */
  order_R: Tensor;
  /** [E] int32 rows per expert, in sorted order */
  groupSizes_E: Tensor;
  /** float weights, or all three held quantized in one format (serve mode, inference only) */
  wi0_EDH: Tensor | QuantizedWeight;
  wi1_EDH: Tensor | QuantizedWeight;
  wo_EHD: Tensor | QuantizedWeight;
  /** [T,K] float32; omitted: every combine weight is 1 */
  combineWeights_TK?: Tensor | undefined;
  /** [E,H], [E,H], [E,D] */
  bias?: { wi0_EH: Tensor; wi1_EH: Tensor; wo_ED: Tensor } | undefined;
}

export interface ExpertFfnOptions {
  numExpertsPerTok: number;
  activation: FfnActivation;
  /** 0 (default): act = f(h0)·h1; L > 0: GPT-OSS's clamped GLU a·f(alpha·a)·(b + 1) */
  clampLimit?: number;
  /** default 1.702 */
  alpha?: number;
  /** the layer's dtype, where every intermediate is rounded (default float32; bfloat16: forward only) */
  dtype?: FfnDtype;
  /** quantized weights: quantize each matmul's rows to this many bits first (int8 serve mode); default: float rows */
  lhsBits?: number;
}

/** Names the ExpertFfn GLU computes; other activations need the op composition. */
export function isFfnActivation(name: string): name is FfnActivation {
  return (FFN_ACTIVATIONS as readonly string[]).includes(name);
}

/** y_TD = Σ_k w[t,k] · FFN_e(x[t]) over each token's routed experts, rows grouped by expert. */
export function expertFfn(a: ExpertFfnArgs, o: ExpertFfnOptions): Tensor {
  if (!isFfnActivation(o.activation))
    throw new UnsupportedError(`[expert_ffn] activation ${String(o.activation)} is not one of ${FFN_ACTIVATIONS.join(", ")}`);
  const quantized = servedVariant(a, o);
  const layout = { hasCombineWeights: a.combineWeights_TK !== undefined, hasBias: a.bias !== undefined, quantized };
  const [wi0, wi1, wo] = [a.wi0_EDH, a.wi1_EDH, a.wo_EHD].map((t) => (isQuantizedWeight(t) ? t.codes : t)) as [Tensor, Tensor, Tensor];
  const scales = (t: Tensor | QuantizedWeight): Tensor | undefined => (isQuantizedWeight(t) ? t.scales : undefined);
  const inputs = expertFfnInputList(
    {
      x: a.x_TD,
      order: a.order_R,
      groupSizes: a.groupSizes_E,
      wi0,
      wi1,
      wo,
      w: a.combineWeights_TK,
      b0: a.bias?.wi0_EH,
      b1: a.bias?.wi1_EH,
      bo: a.bias?.wo_ED,
      s0: scales(a.wi0_EDH),
      s1: scales(a.wi1_EDH),
      so: scales(a.wo_EHD),
    },
    layout,
  );
  const params: ExpertFfnParams = {
    numExpertsPerTok: o.numExpertsPerTok,
    activation: o.activation,
    clampLimit: o.clampLimit ?? 0,
    alpha: o.alpha ?? 1.702,
    dtype: o.dtype ?? "float32",
    ...layout,
    residuals: quantized === undefined && isRecording() && inputs.some((t) => t.node !== undefined),
  };
  return bind(Prim.ExpertFfn, inputs, params)[0]!;
}

/** The served variant's params when the weights are held quantized (all three, one format), else undefined. */
function servedVariant(a: ExpertFfnArgs, o: ExpertFfnOptions): ExpertFfnParams["quantized"] {
  const ws = [a.wi0_EDH, a.wi1_EDH, a.wo_EHD];
  const held = ws.filter(isQuantizedWeight);
  if (held.length === 0) {
    if (o.lhsBits !== undefined) throw new UnsupportedError("[expert_ffn] lhsBits is for quantized (served) weights");
    return undefined;
  }
  if (held.length !== 3 || held.some((w) => w.format !== held[0]!.format))
    throw new UnsupportedError(
      `[expert_ffn] wi0, wi1 and wo must all be held quantized in one format, got ${ws.map((w) => (isQuantizedWeight(w) ? w.format : w.dtype)).join(", ")}`,
    );
  const floats = [a.x_TD, a.combineWeights_TK, a.bias?.wi0_EH, a.bias?.wi1_EH, a.bias?.wo_ED];
  if (isRecording() && floats.some((t) => t?.node !== undefined))
    throw new UnsupportedError("[expert_ffn] quantized (served) weights are for inference: differentiate the float layer");
  return { format: held[0]!.format, hidden: held[0]!.shape[2], lhsBits: o.lhsBits ?? 0 };
}
