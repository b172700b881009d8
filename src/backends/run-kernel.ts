// One primitive's kernel on a chosen backend, as dispatch's apply and jit's replay both run it: timed for the trace,
// its arrays wrapped as the output tensors (bfloat16 outputs that come as float32 rounded in place).
import { roundBf16InPlace } from "../core/dtype.js";
import { Tensor } from "../core/tensor.js";
import { Prim, type Params } from "../prims/prims.js";
import type { Aval } from "../prims/shape-rules.js";
import type { Backend } from "./backend.js";
import { recordPrim, tracing } from "./trace.js";

// Primitives whose outputs take their values from their inputs unchanged (gather's from its first): their bfloat16
// outputs of bfloat16 inputs are rounded already (a reshape's storage is its input's).
const MOVES_VALUES: ReadonlySet<Prim> = new Set([
  Prim.Reshape,
  Prim.Transpose,
  Prim.BroadcastTo,
  Prim.Slice,
  Prim.Pad,
  Prim.Concat,
  Prim.Gather,
  Prim.TopK,
  Prim.ReduceMax,
]);

/** Whether a bfloat16 output of this kernel needs rounding: not where the values are bfloat16 already. */
function needsRounding(impl: Backend, prim: Prim, inputs: readonly Tensor[]): boolean {
  if (impl.roundsBf16?.(prim) === true) return false;
  const values = prim === Prim.Gather ? inputs.slice(0, 1) : inputs;
  return !(MOVES_VALUES.has(prim) && values.every((t) => t.dtype === "bfloat16"));
}

export function runKernel<P extends Prim>(
  impl: Backend,
  prim: P,
  inputs: readonly Tensor[],
  params: Params<P>,
  avals: readonly Aval[],
): Tensor[] {
  const traced = tracing();
  const t0 = traced ? performance.now() : 0;
  const datas = impl.run(prim, inputs, params, avals);
  if (traced) recordPrim(prim, impl.name, inputs, performance.now() - t0);
  const round = avals.some((a) => a.dtype === "bfloat16") && needsRounding(impl, prim, inputs);
  return avals.map((a, i) => {
    const d = datas[i]!;
    if (round && a.dtype === "bfloat16" && d instanceof Float32Array) roundBf16InPlace(d);
    return new Tensor(d, a.shape, a.dtype);
  });
}
