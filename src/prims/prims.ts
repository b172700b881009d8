import type { DType } from "../core/dtype.js";
import type { AdamwStepParams, SgdStepParams } from "./optim-steps.js";
import type { ExpertFfnBwdParams, ExpertFfnParams } from "./expert-ffn.js";
import type { QuantizeParams } from "./quantize.js";
import type { QuantizedGmmParams } from "./quantized-gmm.js";

/**
 * The closed primitive set. Every op in moekit lowers to these; each has one shape rule
 * (shape-rules.ts), one VJP rule (autodiff/vjp-rules.ts) and one reference kernel (backends/ref).
 */
export enum Prim {
  // elementwise unary
  Neg = "neg",
  Exp = "exp",
  Log = "log",
  Log1p = "log1p",
  Sqrt = "sqrt",
  Tanh = "tanh",
  Sigmoid = "sigmoid",
  Abs = "abs",
  Sign = "sign",
  Cast = "cast",
  // elementwise binary (operands of equal shape)
  Add = "add",
  Sub = "sub",
  Mul = "mul",
  Div = "div",
  Max = "max",
  Min = "min",
  FloorDiv = "floor_div",
  Mod = "mod",
  Less = "less",
  LessEqual = "less_equal",
  Equal = "equal",
  Greater = "greater",
  // elementwise ternary
  Where = "where",
  // reductions
  ReduceSum = "reduce_sum",
  ReduceMax = "reduce_max",
  // exp(x - max) / sum along one axis, fused
  Softmax = "softmax",
  // movement
  Reshape = "reshape",
  Transpose = "transpose",
  BroadcastTo = "broadcast_to",
  Slice = "slice",
  Pad = "pad",
  Concat = "concat",
  Iota = "iota",
  // matmul
  BatchMatmul = "batch_matmul",
  // routines
  Gather = "gather",
  ScatterAdd = "scatter_add",
  TopK = "top_k",
  Argsort = "argsort",
  Bincount = "bincount",
  Cumsum = "cumsum",
  Gmm = "gmm",
  Tgmm = "tgmm",
  // abs-max integer quantization (values int32, scales per slice)
  Quantize = "quantize",
  // grouped matmul over a rhs held quantized (codes + scales, decoded in the kernel)
  QuantizedGmm = "quantized_gmm",
  // fused MoE expert FFN (gather, up-projections, GLU, down-projection, combine) and its backward
  ExpertFfn = "expert_ffn",
  ExpertFfnBwd = "expert_ffn_bwd",
  // optimizer updates (outputs are the updated inputs, written in place)
  AdamwStep = "adamw_step",
  SgdStep = "sgd_step",
}

type NoParams = Record<string, never>;

export interface PrimParams {
  [Prim.Neg]: NoParams;
  [Prim.Exp]: NoParams;
  [Prim.Log]: NoParams;
  [Prim.Log1p]: NoParams;
  [Prim.Sqrt]: NoParams;
  [Prim.Tanh]: NoParams;
  [Prim.Sigmoid]: NoParams;
  [Prim.Abs]: NoParams;
  [Prim.Sign]: NoParams;
  [Prim.Cast]: { dtype: DType };
  [Prim.Add]: NoParams;
  [Prim.Sub]: NoParams;
  [Prim.Mul]: NoParams;
  [Prim.Div]: NoParams;
  [Prim.Max]: NoParams;
  [Prim.Min]: NoParams;
  [Prim.FloorDiv]: NoParams;
  [Prim.Mod]: NoParams;
  [Prim.Less]: NoParams;
  [Prim.LessEqual]: NoParams;
  [Prim.Equal]: NoParams;
  [Prim.Greater]: NoParams;
  [Prim.Where]: NoParams;
  /** axes are removed from the result (no keepdims). */
  [Prim.ReduceSum]: { axes: readonly number[] };
  [Prim.ReduceMax]: { axes: readonly number[] };
  /** float32 / float64; each operation rounded as in the composition (max, sub, exp, float64 sum, div) */
  [Prim.Softmax]: { axis: number };
  [Prim.Reshape]: { shape: readonly number[] };
  [Prim.Transpose]: { perm: readonly number[] };
  /** same rank; every input dim is 1 or equal to the target dim. */
  [Prim.BroadcastTo]: { shape: readonly number[] };
  [Prim.Slice]: { starts: readonly number[]; ends: readonly number[] };
  [Prim.Pad]: { lo: readonly number[]; hi: readonly number[] };
  [Prim.Concat]: { axis: number };
  [Prim.Iota]: { shape: readonly number[]; axis: number; dtype: DType };
  /** [b,m,k] x [b,k,n] -> [b,m,n] */
  [Prim.BatchMatmul]: NoParams;
  /** x[R,...], idx[n] -> x[idx] [n,...] */
  [Prim.Gather]: NoParams;
  /** upd[n,...], idx[n] -> zeros[numRows,...] with upd rows added at idx */
  [Prim.ScatterAdd]: { numRows: number };
  /** last axis; descending, ties to the lower index. outputs: values, int32 indices */
  [Prim.TopK]: { k: number };
  /** last axis, ascending, stable. */
  [Prim.Argsort]: NoParams;
  /** int32 values in [0,length) counted; others ignored. */
  [Prim.Bincount]: { length: number };
  [Prim.Cumsum]: { axis: number; reverse: boolean };
  /** lhs[m,k], rhs[G,k,n] (or [G,n,k] if transposeRhs), groupSizes[G] -> [m,n]; rows past sum(groupSizes) are 0 */
  [Prim.Gmm]: { transposeRhs: boolean };
  /** lhs[m,k], rhs[m,n], groupSizes[G] -> [G,k,n], out[g] = lhs_g^T rhs_g */
  [Prim.Tgmm]: NoParams;
  [Prim.Quantize]: QuantizeParams;
  [Prim.QuantizedGmm]: QuantizedGmmParams;
  [Prim.ExpertFfn]: ExpertFfnParams;
  [Prim.ExpertFfnBwd]: ExpertFfnBwdParams;
  [Prim.AdamwStep]: AdamwStepParams;
  [Prim.SgdStep]: SgdStepParams;
}

export type Params<P extends Prim> = PrimParams[P];
