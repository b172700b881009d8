// The VJP of ExpertFfn: one ExpertFfnBwd over the forward's residual outputs, for the inputs autodiff tracks
// (an untracked weight skips its products). The residuals go back to the storage pool afterwards, so a second
// backward pass over the same forward is refused rather than reading recycled memory.
import { MoeError, UnsupportedError } from "../core/errors.js";
import { recycle } from "../core/pool.js";
import type { Tensor } from "../core/tensor.js";
import {
  expertFfnBwdOutputs,
  expertFfnInputList,
  expertFfnInputs,
  type ExpertFfnBwdParams,
  type ExpertFfnParams,
  type FfnGradName,
} from "../prims/expert-ffn.js";
import { Prim } from "../prims/prims.js";
import { apply, cast } from "./lax.js";

const consumed = new WeakSet<Tensor>();

export function expertFfnVjp(
  cts: readonly (Tensor | undefined)[],
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  params: ExpertFfnParams,
): (Tensor | undefined)[] {
  const ct = cts[0];
  if (ct === undefined) return inputs.map(() => undefined);
  if (params.quantized !== undefined)
    throw new UnsupportedError("[expert_ffn] quantized (served) weights are for inference: differentiate the float layer");
  if (outputs.length !== 5)
    throw new MoeError("[expert_ffn] differentiating a forward that kept no residuals (bind it with residuals: true)");
  const res = outputs.slice(1);
  if (consumed.has(res[0]!))
    throw new MoeError("[expert_ffn] residuals were consumed by an earlier backward pass of this graph (one backward per forward)");
  const a = expertFfnInputs(inputs, params);
  const tracked = (t: Tensor | undefined): boolean => t?.node !== undefined;
  const { residuals: _, ...rest } = params;
  const p: ExpertFfnBwdParams = {
    ...rest,
    grads: {
      w: tracked(a.w),
      wi0: tracked(a.wi0),
      wi1: tracked(a.wi1),
      wo: tracked(a.wo),
      bias: tracked(a.b0) || tracked(a.b1) || tracked(a.bo),
    },
  };
  const grads = apply(Prim.ExpertFfnBwd, [cast(ct, "float32"), ...inputs, ...res], p);
  for (const r of res) consumed.add(r);
  recycle(res);
  const got = new Map(expertFfnBwdOutputs(p).map((n, i) => [n, grads[i]]));
  const g = (n: FfnGradName): Tensor | undefined => got.get(n);
  const byInput = {
    x: g("x"),
    order: undefined,
    groupSizes: undefined,
    wi0: g("wi0"),
    wi1: g("wi1"),
    wo: g("wo"),
    w: g("w"),
    b0: g("b0"),
    b1: g("b1"),
    bo: g("bo"),
  };
  return expertFfnInputList(byInput, params);
}
