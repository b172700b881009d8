// Primitives applied directly, for VJP rules and the backward sweep (which never record): same shapes and
// dtypes in, no broadcasting or promotion beyond the scalar helpers here.
import type { DType } from "../core/dtype.js";
import { full, type Tensor } from "../core/tensor.js";
import { apply } from "../backends/dispatch.js";
import { Prim, type Params } from "../prims/prims.js";

const one = <P extends Prim>(p: P, ins: readonly Tensor[], params: Params<P>): Tensor => apply(p, ins, params)[0]!;
const none = {} as Record<string, never>;

/** A tensor of `value` shaped and typed like `like`. */
export const fill = (like: Tensor, value: number): Tensor => full(like.shape, value, like.dtype);

export const neg = (x: Tensor): Tensor => one(Prim.Neg, [x], none);
export const sign = (x: Tensor): Tensor => one(Prim.Sign, [x], none);
export const add = (a: Tensor, b: Tensor): Tensor => one(Prim.Add, [a, b], none);
export const sub = (a: Tensor, b: Tensor): Tensor => one(Prim.Sub, [a, b], none);
export const mul = (a: Tensor, b: Tensor): Tensor => one(Prim.Mul, [a, b], none);
export const div = (a: Tensor, b: Tensor): Tensor => one(Prim.Div, [a, b], none);
export const equal = (a: Tensor, b: Tensor): Tensor => one(Prim.Equal, [a, b], none);
export const greater = (a: Tensor, b: Tensor): Tensor => one(Prim.Greater, [a, b], none);
export const where = (c: Tensor, a: Tensor, b: Tensor): Tensor => one(Prim.Where, [c, a, b], none);
export const cast = (x: Tensor, dtype: DType): Tensor => (x.dtype === dtype ? x : one(Prim.Cast, [x], { dtype }));
export const reshape = (x: Tensor, shape: readonly number[]): Tensor => one(Prim.Reshape, [x], { shape });
export const transpose = (x: Tensor, perm: readonly number[]): Tensor => one(Prim.Transpose, [x], { perm });
export const broadcastTo = (x: Tensor, shape: readonly number[]): Tensor => one(Prim.BroadcastTo, [x], { shape });
export const sum = (x: Tensor, axes: readonly number[]): Tensor => one(Prim.ReduceSum, [x], { axes });
export const slice = (x: Tensor, starts: readonly number[], ends: readonly number[]): Tensor => one(Prim.Slice, [x], { starts, ends });
export const pad = (x: Tensor, lo: readonly number[], hi: readonly number[]): Tensor => one(Prim.Pad, [x], { lo, hi });
export const iota = (shape: readonly number[], axis: number): Tensor => one(Prim.Iota, [], { shape, axis, dtype: "int32" });
export const batchMatmul = (a: Tensor, b: Tensor): Tensor => one(Prim.BatchMatmul, [a, b], none);
export const gather = (x: Tensor, idx: Tensor): Tensor => one(Prim.Gather, [x, idx], none);
export const scatterAdd = (u: Tensor, idx: Tensor, numRows: number): Tensor => one(Prim.ScatterAdd, [u, idx], { numRows });
export const gmm = (lhs: Tensor, rhs: Tensor, gs: Tensor, transposeRhs: boolean): Tensor => one(Prim.Gmm, [lhs, rhs, gs], { transposeRhs });
export const tgmm = (lhs: Tensor, rhs: Tensor, gs: Tensor): Tensor => one(Prim.Tgmm, [lhs, rhs, gs], none);
export { apply };
