// One primitive's kernel on a chosen backend, as dispatch's apply and jit's replay both run it: timed for the trace,
// its arrays wrapped as the output tensors (bfloat16 outputs that come as float32 rounded in place).
import { roundBf16InPlace } from "../core/dtype.js";
import { Tensor } from "../core/tensor.js";
import type { Prim, Params } from "../prims/prims.js";
import type { Aval } from "../prims/shape-rules.js";
import type { Backend } from "./backend.js";
import { recordPrim, tracing } from "./trace.js";

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
  return avals.map((a, i) => {
    const d = datas[i]!;
    if (a.dtype === "bfloat16" && d instanceof Float32Array) roundBf16InPlace(d);
    return new Tensor(d, a.shape, a.dtype);
  });
}
