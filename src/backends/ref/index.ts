// The reference backend: the living spec. Plain loops, float64 accumulation, never optimised.
import type { TypedArray } from "../../core/dtype.js";
import type { Tensor } from "../../core/tensor.js";
import { Prim, type Params } from "../../prims/prims.js";
import type { Aval } from "../../prims/shape-rules.js";
import type { Backend } from "../backend.js";
import { add, floorDiv, mapBinary, mapUnary, mul, max2, min2, mod, sigmoid, where } from "./kernels/elementwise.js";
import { argsort, bincount, gather, scatterAdd, topK } from "./kernels/indexing.js";
import { batchMatmul } from "./kernels/matmul.js";
import { broadcastTo, concat, iota, pad, slice, transpose } from "./kernels/movement.js";
import { cumsum, reduceAxes, softmax } from "./kernels/reduce.js";
import { gmm, tgmm } from "./kernels/segment.js";
import { expertFfn, expertFfnBwd } from "./kernels/expert-ffn.js";
import { adamwStep, sgdStep } from "./kernels/optim-steps.js";
import { quantize } from "./kernels/quantize.js";
import { quantizedGmm } from "./kernels/quantized-gmm.js";
import { expertFfnQuantized } from "./kernels/expert-ffn-quantized.js";

type RefKernel<P extends Prim> = (ins: readonly Tensor[], params: Params<P>, outs: readonly Aval[]) => TypedArray[];

const un =
  (f: (x: number) => number): RefKernel<Prim> =>
  (ins, _p, outs) => [mapUnary(ins[0]!, outs[0]!, f)];
const bin =
  (f: (x: number, y: number) => number): RefKernel<Prim> =>
  (ins, _p, outs) => [mapBinary(ins[0]!, ins[1]!, outs[0]!, f)];

const kernels: { [P in Prim]: RefKernel<P> } = {
  [Prim.Neg]: un((x) => -x),
  [Prim.Exp]: un(Math.exp),
  [Prim.Log]: un(Math.log),
  [Prim.Log1p]: un(Math.log1p),
  [Prim.Sqrt]: un(Math.sqrt),
  [Prim.Tanh]: un(Math.tanh),
  [Prim.Sigmoid]: un(sigmoid),
  [Prim.Abs]: un(Math.abs),
  [Prim.Sign]: un((x) => (x > 0 ? 1 : x < 0 ? -1 : x)),
  [Prim.Cast]: (ins, { dtype }, outs) => [mapUnary(ins[0]!, outs[0]!, dtype === "int32" ? Math.trunc : (x) => x)],
  [Prim.Add]: (ins, _p, outs) => [add(ins[0]!, ins[1]!, outs[0]!)],
  [Prim.Sub]: bin((x, y) => x - y),
  [Prim.Mul]: (ins, _p, outs) => [mul(ins[0]!, ins[1]!, outs[0]!)],
  [Prim.Div]: bin((x, y) => x / y),
  [Prim.Max]: bin(max2),
  [Prim.Min]: bin(min2),
  [Prim.FloorDiv]: bin(floorDiv),
  [Prim.Mod]: bin(mod),
  [Prim.Less]: bin((x, y) => (x < y ? 1 : 0)),
  [Prim.LessEqual]: bin((x, y) => (x <= y ? 1 : 0)),
  [Prim.Equal]: bin((x, y) => (x === y ? 1 : 0)),
  [Prim.Greater]: bin((x, y) => (x > y ? 1 : 0)),
  [Prim.Where]: (ins, _p, outs) => [where(ins[0]!, ins[1]!, ins[2]!, outs[0]!)],
  [Prim.ReduceSum]: (ins, { axes }, outs) => [reduceAxes(ins[0]!, axes, outs[0]!, 0, (a, x) => a + x)],
  [Prim.ReduceMax]: (ins, { axes }, outs) => [reduceAxes(ins[0]!, axes, outs[0]!, -Infinity, max2)],
  [Prim.Softmax]: (ins, { axis }, outs) => [softmax(ins[0]!, axis, outs[0]!)],
  // row-major order is unchanged: the output shares the input's storage (tensors are immutable)
  [Prim.Reshape]: (ins) => [ins[0]!.data],
  [Prim.Transpose]: (ins, { perm }, outs) => [transpose(ins[0]!, perm, outs[0]!)],
  [Prim.BroadcastTo]: (ins, _p, outs) => [broadcastTo(ins[0]!, outs[0]!)],
  [Prim.Slice]: (ins, { starts }, outs) => [slice(ins[0]!, starts, outs[0]!)],
  [Prim.Pad]: (ins, { lo }, outs) => [pad(ins[0]!, lo, outs[0]!)],
  [Prim.Concat]: (ins, { axis }, outs) => [concat(ins, axis, outs[0]!)],
  [Prim.Iota]: (_ins, { axis }, outs) => [iota(outs[0]!, axis)],
  [Prim.BatchMatmul]: (ins, _p, outs) => [batchMatmul(ins[0]!, ins[1]!, outs[0]!)],
  [Prim.Gather]: (ins, _p, outs) => [gather(ins[0]!, ins[1]!, outs[0]!)],
  [Prim.ScatterAdd]: (ins, { numRows }, outs) => [scatterAdd(ins[0]!, ins[1]!, numRows, outs[0]!)],
  [Prim.TopK]: (ins, { k }, outs) => topK(ins[0]!, k, outs),
  [Prim.Argsort]: (ins) => [argsort(ins[0]!)],
  [Prim.Bincount]: (ins, { length }) => [bincount(ins[0]!, length)],
  [Prim.Cumsum]: (ins, { axis, reverse }, outs) => [cumsum(ins[0]!, axis, reverse, outs[0]!)],
  [Prim.Gmm]: (ins, { transposeRhs }, outs) => [gmm(ins[0]!, ins[1]!, ins[2]!, transposeRhs, outs[0]!)],
  [Prim.Tgmm]: (ins, _p, outs) => [tgmm(ins[0]!, ins[1]!, ins[2]!, outs[0]!)],
  [Prim.Quantize]: (ins, params, outs) => quantize(ins[0]!, ins[1], params, outs),
  [Prim.QuantizedGmm]: (ins, params, outs) => [quantizedGmm(ins, params, outs[0]!)],
  [Prim.ExpertFfn]: (ins, params) => (params.quantized !== undefined ? [expertFfnQuantized(ins, params)] : expertFfn(ins, params)),
  [Prim.ExpertFfnBwd]: (ins, params) => expertFfnBwd(ins, params),
  [Prim.AdamwStep]: (ins, params) => adamwStep(ins, params),
  [Prim.SgdStep]: (ins, params) => sgdStep(ins, params),
};

export const refBackend: Backend = {
  name: "ref",
  supports: () => true,
  run<P extends Prim>(prim: P, ins: readonly Tensor[], params: Params<P>, outs: readonly Aval[]): TypedArray[] {
    return kernels[prim](ins, params, outs);
  },
};
