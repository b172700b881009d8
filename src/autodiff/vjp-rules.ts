import type { Tensor } from "../core/tensor.js";
import { normalizeAxis } from "../core/shape.js";
import { Prim, type Params } from "../prims/prims.js";
import { add, cast, div, equal, greater, mul, neg, sign, sub, where } from "../ops/elementwise.js";
import { bind1 } from "../ops/bind.js";
import { broadcastTo, pad, reshape, slice, transpose } from "../ops/movement.js";
import { sum } from "../ops/reduce.js";
import { batchMatmul } from "../ops/matmul.js";
import { iota, scatterAdd, take } from "../ops/indexing.js";
import { gmm, tgmm } from "../ops/segment.js";

type Ct = Tensor | undefined;
/** Maps output cotangents to input cotangents; undefined means zero. */
export type VjpRule<P extends Prim> = (
  cts: readonly Ct[],
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  params: Params<P>,
) => Ct[];

const on = (ct: Ct, f: (c: Tensor) => Tensor): Ct => (ct === undefined ? undefined : f(ct));

/** d max(a,b): ct to the larger operand, split evenly on ties (as jax.lax.max). */
function selectVjp<P extends Prim.Max | Prim.Min>(isMax: boolean): VjpRule<P> {
  return ([ct], [a, b]) => {
    if (ct === undefined) return [undefined, undefined];
    const win = isMax ? greater(a!, b!) : greater(b!, a!);
    const tie = equal(a!, b!);
    const wa = where(win, 1, where(tie, 0.5, 0));
    return [mul(ct, wa), mul(ct, sub(1, wa))];
  };
}

function unbroadcast(ct: Tensor, shape: readonly number[]): Tensor {
  const axes = shape.map((d, i) => (d === 1 && ct.shape[i] !== 1 ? i : -1)).filter((i) => i >= 0);
  return reshape(axes.length > 0 ? sum(ct, axes) : ct, shape);
}

export const vjpRules: { [P in Prim]: VjpRule<P> | null } = {
  [Prim.Neg]: ([ct]) => [on(ct, neg)],
  [Prim.Exp]: ([ct], _i, [y]) => [on(ct, (c) => mul(c, y!))],
  [Prim.Log]: ([ct], [x]) => [on(ct, (c) => div(c, x!))],
  [Prim.Log1p]: ([ct], [x]) => [on(ct, (c) => div(c, add(x!, 1)))],
  [Prim.Sqrt]: ([ct], _i, [y]) => [on(ct, (c) => div(c, mul(y!, 2)))],
  [Prim.Tanh]: ([ct], _i, [y]) => [on(ct, (c) => mul(c, sub(1, mul(y!, y!))))],
  [Prim.Sigmoid]: ([ct], _i, [y]) => [on(ct, (c) => mul(c, mul(y!, sub(1, y!))))],
  [Prim.Abs]: ([ct], [x]) => [on(ct, (c) => mul(c, sign(x!)))],
  [Prim.Sign]: () => [undefined],
  [Prim.Cast]: ([ct], [x]) => [x!.dtype === "int32" ? undefined : on(ct, (c) => cast(c, x!.dtype))],
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
  [Prim.Where]: ([ct], [c]) => [undefined, on(ct, (g) => where(c!, g, 0)), on(ct, (g) => where(c!, 0, g))],
  [Prim.ReduceSum]: ([ct], [x], _o, { axes }) => {
    const ax = axes.map((a) => normalizeAxis(a, x!.ndim));
    return [on(ct, (c) => broadcastTo(reshape(c, x!.shape.map((d, i) => (ax.includes(i) ? 1 : d))), x!.shape))];
  },
  // ct shared evenly among the maxima
  [Prim.ReduceMax]: ([ct], [x], [y], params) => {
    if (ct === undefined) return [undefined];
    const axes = params.axes.map((a) => normalizeAxis(a, x!.ndim));
    const keep = x!.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const mask = cast(equal(x!, broadcastTo(reshape(y!, keep), x!.shape)), x!.dtype);
    const count = sum(mask, [...axes]);
    return [mul(mask, broadcastTo(reshape(div(ct, count), keep), x!.shape))];
  },
  [Prim.Reshape]: ([ct], [x]) => [on(ct, (c) => reshape(c, x!.shape))],
  [Prim.Transpose]: ([ct], _i, _o, { perm }) => {
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    return [on(ct, (c) => transpose(c, inv))];
  },
  [Prim.BroadcastTo]: ([ct], [x]) => [on(ct, (c) => unbroadcast(c, x!.shape))],
  [Prim.Slice]: ([ct], [x], _o, { starts, ends }) => [
    on(ct, (c) =>
      pad(
        c,
        starts,
        x!.shape.map((d, i) => d - ends[i]!),
      ),
    ),
  ],
  [Prim.Pad]: ([ct], [x], _o, { lo }) => [
    on(ct, (c) =>
      slice(
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
      return ct === undefined ? undefined : slice(ct, st, en);
    });
  },
  [Prim.Iota]: null,
  [Prim.BatchMatmul]: ([ct], [a, b]) => [
    on(ct, (c) => batchMatmul(c, transpose(b!, [0, 2, 1]))),
    on(ct, (c) => batchMatmul(transpose(a!, [0, 2, 1]), c)),
  ],
  [Prim.Gather]: ([ct], [x, idx]) => [on(ct, (c) => scatterAdd(c, idx!, x!.shape[0]!)), undefined],
  [Prim.ScatterAdd]: ([ct], [, idx]) => [on(ct, (c) => take(c, idx!, 0)), undefined],
  [Prim.TopK]: ([ct], [x], [, idx]) => {
    if (ct === undefined) return [undefined];
    const n = x!.shape[x!.ndim - 1]!;
    const k = idx!.shape[idx!.ndim - 1]!;
    const rows = n === 0 ? 0 : x!.size / n;
    const flat = add(reshape(idx!, [rows, k]), mul(iota([rows, k], 0), n));
    return [reshape(scatterAdd(reshape(ct, [rows * k]), reshape(flat, [rows * k]), rows * n), x!.shape)];
  },
  [Prim.Argsort]: null,
  [Prim.Bincount]: null,
  [Prim.Cumsum]: ([ct], _i, _o, { axis, reverse }) => [on(ct, (c) => bind1(Prim.Cumsum, [c], { axis, reverse: !reverse }))],
  // dlhs = gmm(ct, rhs^T), drhs = tgmm(lhs, ct) (transposed back when rhs was used transposed)
  [Prim.Gmm]: ([ct], [lhs, rhs, gs], _o, { transposeRhs }) => [
    on(ct, (c) => gmm(c, rhs!, gs!, !transposeRhs)),
    on(ct, (c) => (transposeRhs ? transpose(tgmm(lhs!, c, gs!), [0, 2, 1]) : tgmm(lhs!, c, gs!))),
    undefined,
  ],
  // out[g] = lhs_g^T rhs_g: dlhs_g = rhs_g ct[g]^T, drhs_g = lhs_g ct[g]
  [Prim.Tgmm]: ([ct], [lhs, rhs, gs]) => [on(ct, (c) => gmm(rhs!, c, gs!, true)), on(ct, (c) => gmm(lhs!, c, gs!)), undefined],
};
