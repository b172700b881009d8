// One VJP rule per primitive (null: not differentiable), written on primitives directly (autodiff/lax.ts): the
// backward sweep never records, so the rules need no graph.
import type { Tensor } from "../core/tensor.js";
import { normalizeAxis } from "../core/shape.js";
import { Prim, type Params } from "../prims/prims.js";
import * as lax from "./lax.js";
import { expertFfnVjp } from "./expert-ffn-vjp.js";

type Ct = Tensor | undefined;
/** Maps output cotangents to input cotangents; undefined means zero. */
export type VjpRule<P extends Prim> = (
  cts: readonly Ct[],
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  params: Params<P>,
) => Ct[];

const on = (ct: Ct, f: (c: Tensor) => Tensor): Ct => (ct === undefined ? undefined : f(ct));
const { add, div, mul, neg, sub, fill } = lax;

/** d max(a,b): ct to the larger operand, split evenly on ties (as jax.lax.max). */
function selectVjp<P extends Prim.Max | Prim.Min>(isMax: boolean): VjpRule<P> {
  return ([ct], [a, b]) => {
    if (ct === undefined) return [undefined, undefined];
    const win = isMax ? lax.greater(a!, b!) : lax.greater(b!, a!);
    const tie = lax.equal(a!, b!);
    const wa = lax.where(win, fill(ct, 1), lax.where(tie, fill(ct, 0.5), fill(ct, 0)));
    return [mul(ct, wa), mul(ct, sub(fill(ct, 1), wa))];
  };
}

/** Sum `ct` over the axes a same-rank broadcast expanded (where `shape` has 1). */
function unbroadcast(ct: Tensor, shape: readonly number[]): Tensor {
  const axes = shape.map((d, i) => (d === 1 && ct.shape[i] !== 1 ? i : -1)).filter((i) => i >= 0);
  return lax.reshape(axes.length > 0 ? lax.sum(ct, axes) : ct, shape);
}

/** `x` reshaped with the reduced axes kept as 1 and broadcast back to `shape`. */
function unreduce(x: Tensor, shape: readonly number[], axes: readonly number[]): Tensor {
  return lax.broadcastTo(
    lax.reshape(
      x,
      shape.map((d, i) => (axes.includes(i) ? 1 : d)),
    ),
    shape,
  );
}

const sortedAxes = (axes: readonly number[], ndim: number): number[] =>
  [...new Set(axes.map((a) => normalizeAxis(a, ndim)))].sort((a, b) => a - b);

export const vjpRules: { [P in Prim]: VjpRule<P> | null } = {
  [Prim.Neg]: ([ct]) => [on(ct, neg)],
  [Prim.Exp]: ([ct], _i, [y]) => [on(ct, (c) => mul(c, y!))],
  [Prim.Log]: ([ct], [x]) => [on(ct, (c) => div(c, x!))],
  [Prim.Log1p]: ([ct], [x]) => [on(ct, (c) => div(c, add(x!, fill(x!, 1))))],
  [Prim.Sqrt]: ([ct], _i, [y]) => [on(ct, (c) => div(c, mul(y!, fill(y!, 2))))],
  [Prim.Tanh]: ([ct], _i, [y]) => [on(ct, (c) => mul(c, sub(fill(y!, 1), mul(y!, y!))))],
  [Prim.Sigmoid]: ([ct], _i, [y]) => [on(ct, (c) => mul(c, mul(y!, sub(fill(y!, 1), y!))))],
  [Prim.Abs]: ([ct], [x]) => [on(ct, (c) => mul(c, lax.sign(x!)))],
  [Prim.Sign]: () => [undefined],
  [Prim.Cast]: ([ct], [x]) => [x!.dtype === "int32" ? undefined : on(ct, (c) => lax.cast(c, x!.dtype))],
  [Prim.Add]: ([ct]) => [ct, ct],
  [Prim.Sub]: ([ct]) => [ct, on(ct, neg)],
  // d(x·y) = x·dy + dx·y
  [Prim.Mul]: ([ct], [a, b]) => [on(ct, (c) => mul(c, b!)), on(ct, (c) => mul(c, a!))],
  // d(x/y) = dx/y - x·dy/y²
  [Prim.Div]: ([ct], [a, b]) => [on(ct, (c) => div(c, b!)), on(ct, (c) => neg(div(mul(c, a!), mul(b!, b!))))],
  [Prim.Max]: selectVjp(true),
  [Prim.Min]: selectVjp(false),
  [Prim.FloorDiv]: null,
  [Prim.Mod]: null,
  [Prim.Less]: null,
  [Prim.LessEqual]: null,
  [Prim.Equal]: null,
  [Prim.Greater]: null,
  [Prim.Where]: ([ct], [c]) => [undefined, on(ct, (g) => lax.where(c!, g, fill(g, 0))), on(ct, (g) => lax.where(c!, fill(g, 0), g))],
  [Prim.ReduceSum]: ([ct], [x], _o, { axes }) => [on(ct, (c) => unreduce(c, x!.shape, sortedAxes(axes, x!.ndim)))],
  // ct shared evenly among the maxima
  [Prim.ReduceMax]: ([ct], [x], [y], params) => {
    if (ct === undefined) return [undefined];
    const axes = sortedAxes(params.axes, x!.ndim);
    const mask = lax.cast(lax.equal(x!, unreduce(y!, x!.shape, axes)), x!.dtype);
    const count = axes.length > 0 ? lax.sum(mask, axes) : mask;
    return [mul(mask, unreduce(div(ct, count), x!.shape, axes))];
  },
  // y (ct - sum(ct y)) along the axis
  [Prim.Softmax]: ([ct], _i, [y], { axis }) => {
    const ax = [normalizeAxis(axis, y!.ndim)];
    return [on(ct, (c) => mul(y!, sub(c, unreduce(lax.sum(mul(c, y!), ax), y!.shape, ax))))];
  },
  [Prim.Reshape]: ([ct], [x]) => [on(ct, (c) => lax.reshape(c, x!.shape))],
  [Prim.Transpose]: ([ct], _i, _o, { perm }) => {
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    return [on(ct, (c) => lax.transpose(c, inv))];
  },
  [Prim.BroadcastTo]: ([ct], [x]) => [on(ct, (c) => unbroadcast(c, x!.shape))],
  [Prim.Slice]: ([ct], [x], _o, { starts, ends }) => [
    on(ct, (c) =>
      lax.pad(
        c,
        starts,
        x!.shape.map((d, i) => d - ends[i]!),
      ),
    ),
  ],
  [Prim.Pad]: ([ct], [x], _o, { lo }) => [
    on(ct, (c) =>
      lax.slice(
        c,
        lo,
        x!.shape.map((d, i) => lo[i]! + d),
      ),
    ),
  ],
  [Prim.Concat]: ([ct], ins, _o, params) => {
    const axis = normalizeAxis(params.axis, ins[0]!.ndim);
    let off = 0;
    return ins.map((t) => {
      const n = t.shape[axis]!;
      const st = t.shape.map(() => 0);
      const en = [...ct!.shape];
      st[axis] = off;
      en[axis] = off + n;
      off += n;
      return ct === undefined ? undefined : lax.slice(ct, st, en);
    });
  },
  [Prim.Iota]: null,
  [Prim.BatchMatmul]: ([ct], [a, b]) => [
    on(ct, (c) => lax.batchMatmul(c, lax.transpose(b!, [0, 2, 1]))),
    on(ct, (c) => lax.batchMatmul(lax.transpose(a!, [0, 2, 1]), c)),
  ],
  [Prim.Gather]: ([ct], [x, idx]) => [on(ct, (c) => lax.scatterAdd(c, idx!, x!.shape[0]!)), undefined],
  [Prim.ScatterAdd]: ([ct], [, idx]) => [on(ct, (c) => lax.gather(c, idx!)), undefined],
  [Prim.TopK]: ([ct], [x], [, idx]) => {
    if (ct === undefined) return [undefined];
    const n = x!.shape[x!.ndim - 1]!;
    const k = idx!.shape[idx!.ndim - 1]!;
    const rows = n === 0 ? 0 : x!.size / n;
    const base = lax.iota([rows, k], 0);
    const flat = add(lax.reshape(idx!, [rows, k]), mul(base, fill(base, n)));
    return [lax.reshape(lax.scatterAdd(lax.reshape(ct, [rows * k]), lax.reshape(flat, [rows * k]), rows * n), x!.shape)];
  },
  [Prim.Argsort]: null,
  [Prim.Bincount]: null,
  [Prim.Cumsum]: ([ct], _i, _o, { axis, reverse }) => [on(ct, (c) => lax.apply(Prim.Cumsum, [c], { axis, reverse: !reverse })[0]!)],
  // dlhs = gmm(ct, rhs^T), drhs = tgmm(lhs, ct) (transposed back when rhs was used transposed)
  [Prim.Gmm]: ([ct], [lhs, rhs, gs], _o, { transposeRhs }) => [
    on(ct, (c) => lax.gmm(c, rhs!, gs!, !transposeRhs)),
    on(ct, (c) => (transposeRhs ? lax.transpose(lax.tgmm(lhs!, c, gs!), [0, 2, 1]) : lax.tgmm(lhs!, c, gs!))),
    undefined,
  ],
  // out[g] = lhs_g^T rhs_g: dlhs_g = rhs_g ct[g]^T, drhs_g = lhs_g ct[g]
  [Prim.Tgmm]: ([ct], [lhs, rhs, gs]) => [
    on(ct, (c) => lax.gmm(rhs!, c, gs!, true)),
    on(ct, (c) => lax.gmm(lhs!, c, gs!, false)),
    undefined,
  ],
  // straight-through gradients belong to the quantized matmuls (ops/quantize.ts), not to the rounding
  [Prim.Quantize]: null,
  // serve mode: inference only
  [Prim.QuantizedGmm]: null,
  [Prim.ExpertFfn]: expertFfnVjp,
  [Prim.ExpertFfnBwd]: null,
  [Prim.AdamwStep]: null,
  [Prim.SgdStep]: null,
};
