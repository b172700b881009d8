// The fused expert FFN op: validates, then binds ExpertFfn (prims/expert-ffn.ts states the math), asking for the
// residuals only when a backward pass can follow.
import { UnsupportedError } from "../core/errors.js";
import type { Tensor } from "../core/tensor.js";
import { bind } from "../autodiff/bind.js";
import { isRecording } from "../autodiff/graph.js";
import { expertFfnInputList, FFN_ACTIVATIONS, type ExpertFfnParams, type FfnActivation, type FfnDtype } from "../prims/expert-ffn.js";
import { Prim } from "../prims/prims.js";

export type { FfnActivation, FfnDtype };

export interface ExpertFfnArgs {
  /** [T,D] float32 tokens */
  x_TD: Tensor;
  /** [T·K] int32: sorted row r holds routed choice order_R[r] = t·K + k */
  order_R: Tensor;
  /** [E] int32 rows per expert, in sorted order */
  groupSizes_E: Tensor;
  wi0_EDH: Tensor;
  wi1_EDH: Tensor;
  wo_EHD: Tensor;
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
}

/** Names the ExpertFfn GLU computes; other activations need the op composition. */
export function isFfnActivation(name: string): name is FfnActivation {
  return (FFN_ACTIVATIONS as readonly string[]).includes(name);
}

/** y_TD = Σ_k w[t,k] · FFN_e(x[t]) over each token's routed experts, rows grouped by expert. */
export function expertFfn(a: ExpertFfnArgs, o: ExpertFfnOptions): Tensor {
  if (!isFfnActivation(o.activation))
    throw new UnsupportedError(`[expert_ffn] activation ${String(o.activation)} is not one of ${FFN_ACTIVATIONS.join(", ")}`);
  const layout = { hasCombineWeights: a.combineWeights_TK !== undefined, hasBias: a.bias !== undefined };
  const inputs = expertFfnInputList(
    {
      x: a.x_TD,
      order: a.order_R,
      groupSizes: a.groupSizes_E,
      wi0: a.wi0_EDH,
      wi1: a.wi1_EDH,
      wo: a.wo_EHD,
      w: a.combineWeights_TK,
      b0: a.bias?.wi0_EH,
      b1: a.bias?.wi1_EH,
      bo: a.bias?.wo_ED,
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
    residuals: isRecording() && inputs.some((t) => t.node !== undefined),
  };
  return bind(Prim.ExpertFfn, inputs, params)[0]!;
}
