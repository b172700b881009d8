// The VJP of ExpertFfn: one ExpertFfnBwd over the forward's residual outputs, for the inputs autodiff tracks
// (an untracked weight skips its products). The residuals go back to the storage pool afterwards, so a second
// backward pass over the same forward is refused rather than reading recycled memory.
import { MoeError } from "../core/errors.js";
import { storagePool } from "../core/pool.js";
import type { Tensor } from "../core/tensor.js";
import { expertFfnInputs, type ExpertFfnBwdParams, type ExpertFfnParams } from "../prims/expert-ffn.js";
import { Prim } from "../prims/prims.js";
import { apply } from "../backends/dispatch.js";

const consumed = new WeakSet<Tensor>();

export function expertFfnVjp(
  cts: readonly (Tensor | undefined)[],
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  params: ExpertFfnParams,
): (Tensor | undefined)[] {
  const ct = cts[0];
  if (ct === undefined) return inputs.map(() => undefined);
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
  const grads = apply(
    Prim.ExpertFfnBwd,
    [ct.dtype === "float32" ? ct : apply(Prim.Cast, [ct], { dtype: "float32" })[0]!, ...inputs, ...res],
    p,
  );
  for (const r of res) {
    consumed.add(r);
    storagePool.give(r.data as Float32Array);
  }
  let i = 0;
  const next = (want: boolean): Tensor | undefined => (want ? grads[i++] : undefined);
  const dx = next(true);
  const dw = next(params.hasCombineWeights && p.grads.w);
  const dwi0 = next(p.grads.wi0);
  const dwi1 = next(p.grads.wi1);
  const dwo = next(p.grads.wo);
  const wantBias = params.hasBias && p.grads.bias;
  const [db0, db1, dbo] = [next(wantBias), next(wantBias), next(wantBias)];
  const out: (Tensor | undefined)[] = [dx, undefined, undefined, dwi0, dwi1, dwo];
  if (params.hasCombineWeights) out.push(dw);
  if (params.hasBias) out.push(db0, db1, dbo);
  return out;
}
