import type { DType } from "../core/dtype.js";
import { isFloat } from "../core/dtype.js";
import { DTypeError, ShapeError } from "../core/errors.js";
import { fmt, normalizeAxis, resolveReshape, shapesEqual, type Aval } from "../core/shape.js";
import { expertFfnBwdShape, expertFfnShape } from "./expert-ffn.js";
import { adamwStepShape, sgdStepShape } from "./optim-steps.js";
import { quantizeShape } from "./quantize.js";
import { quantizedGmmShape } from "./quantized-gmm.js";
import { Prim, type Params } from "./prims.js";

export type { Aval };

export type ShapeRule<P extends Prim> = (inputs: readonly Aval[], params: Params<P>) => Aval[];

function nIn(p: Prim, inputs: readonly Aval[], n: number): void {
  if (inputs.length !== n) throw new ShapeError(`[${p}] expects ${n} inputs, got ${inputs.length}`);
}

const unary =
  (p: Prim, floatOnly = true): ShapeRule<Prim> =>
  (ins) => {
    nIn(p, ins, 1);
    const a = ins[0]!;
    if (floatOnly && !isFloat(a.dtype)) throw new DTypeError(`[${p}] needs a float input, got ${a.dtype}`);
    return [{ shape: a.shape, dtype: a.dtype }];
  };

const binary =
  (p: Prim, out?: DType, intOnly = false): ShapeRule<Prim> =>
  (ins) => {
    nIn(p, ins, 2);
    const [a, b] = [ins[0]!, ins[1]!];
    if (!shapesEqual(a.shape, b.shape)) throw new ShapeError(`[${p}] shapes ${fmt(a.shape)} != ${fmt(b.shape)}`);
    if (a.dtype !== b.dtype) throw new DTypeError(`[${p}] dtypes ${a.dtype} != ${b.dtype}`);
    if (intOnly && a.dtype !== "int32") throw new DTypeError(`[${p}] needs int32 operands, got ${a.dtype}`);
    return [{ shape: a.shape, dtype: out ?? a.dtype }];
  };

function reduce(p: Prim, ins: readonly Aval[], axes: readonly number[]): Aval[] {
  nIn(p, ins, 1);
  const a = ins[0]!;
  const ax = new Set(axes.map((x) => normalizeAxis(x, a.shape.length, p)));
  return [{ shape: a.shape.filter((_, i) => !ax.has(i)), dtype: a.dtype }];
}

function int32Vector(p: Prim, a: Aval, what: string): void {
  if (a.dtype !== "int32" || a.shape.length !== 1) {
    throw new DTypeError(`[${p}] ${what} must be a 1-D int32 tensor, got ${a.dtype}${fmt(a.shape)}`);
  }
}

export const shapeRules: { [P in Prim]: ShapeRule<P> } = {
  [Prim.Neg]: unary(Prim.Neg, false),
  [Prim.Exp]: unary(Prim.Exp),
  [Prim.Log]: unary(Prim.Log),
  [Prim.Log1p]: unary(Prim.Log1p),
  [Prim.Sqrt]: unary(Prim.Sqrt),
  [Prim.Tanh]: unary(Prim.Tanh),
  [Prim.Sigmoid]: unary(Prim.Sigmoid),
  [Prim.Abs]: unary(Prim.Abs, false),
  [Prim.Sign]: unary(Prim.Sign, false),
  [Prim.Cast]: (ins, { dtype }) => {
    nIn(Prim.Cast, ins, 1);
    return [{ shape: ins[0]!.shape, dtype }];
  },
  [Prim.Add]: binary(Prim.Add),
  [Prim.Sub]: binary(Prim.Sub),
  [Prim.Mul]: binary(Prim.Mul),
  [Prim.Div]: binary(Prim.Div),
  [Prim.Max]: binary(Prim.Max),
  [Prim.Min]: binary(Prim.Min),
  [Prim.FloorDiv]: binary(Prim.FloorDiv, undefined, true),
  [Prim.Mod]: binary(Prim.Mod, undefined, true),
  [Prim.Less]: binary(Prim.Less, "int32"),
  [Prim.LessEqual]: binary(Prim.LessEqual, "int32"),
  [Prim.Equal]: binary(Prim.Equal, "int32"),
  [Prim.Greater]: binary(Prim.Greater, "int32"),
  [Prim.Where]: (ins) => {
    nIn(Prim.Where, ins, 3);
    const [c, a, b] = [ins[0]!, ins[1]!, ins[2]!];
    if (c.dtype !== "int32") throw new DTypeError(`[where] condition must be int32, got ${c.dtype}`);
    if (!shapesEqual(c.shape, a.shape) || !shapesEqual(a.shape, b.shape)) {
      throw new ShapeError(`[where] shapes ${fmt(c.shape)}, ${fmt(a.shape)}, ${fmt(b.shape)} differ`);
    }
    if (a.dtype !== b.dtype) throw new DTypeError(`[where] dtypes ${a.dtype} != ${b.dtype}`);
    return [{ shape: a.shape, dtype: a.dtype }];
  },
  [Prim.ReduceSum]: (ins, { axes }) => reduce(Prim.ReduceSum, ins, axes),
  [Prim.ReduceMax]: (ins, { axes }) => reduce(Prim.ReduceMax, ins, axes),
  [Prim.Softmax]: (ins, { axis }) => {
    nIn(Prim.Softmax, ins, 1);
    const a = ins[0]!;
    if (a.dtype !== "float32" && a.dtype !== "float64") throw new DTypeError(`[softmax] takes float32 or float64, got ${a.dtype}`);
    normalizeAxis(axis, a.shape.length, "softmax");
    return [{ shape: a.shape, dtype: a.dtype }];
  },
  [Prim.Reshape]: (ins, { shape }) => {
    nIn(Prim.Reshape, ins, 1);
    return [{ shape: resolveReshape(ins[0]!.shape, shape), dtype: ins[0]!.dtype }];
  },
  [Prim.Transpose]: (ins, { perm }) => {
    nIn(Prim.Transpose, ins, 1);
    const a = ins[0]!;
    const sorted = [...perm].sort((x, y) => x - y);
    if (perm.length !== a.shape.length || sorted.some((v, i) => v !== i)) {
      throw new ShapeError(`[transpose] perm [${perm.join(",")}] is not a permutation of rank ${a.shape.length}`);
    }
    return [{ shape: perm.map((p) => a.shape[p]!), dtype: a.dtype }];
  },
  [Prim.BroadcastTo]: (ins, { shape }) => {
    nIn(Prim.BroadcastTo, ins, 1);
    const a = ins[0]!;
    if (a.shape.length !== shape.length || a.shape.some((d, i) => d !== 1 && d !== shape[i])) {
      throw new ShapeError(`[broadcast_to] cannot broadcast ${fmt(a.shape)} to ${fmt(shape)}`);
    }
    return [{ shape, dtype: a.dtype }];
  },
  [Prim.Slice]: (ins, { starts, ends }) => {
    nIn(Prim.Slice, ins, 1);
    const a = ins[0]!;
    if (starts.length !== a.shape.length || ends.length !== a.shape.length) {
      throw new ShapeError(`[slice] starts/ends rank != ${a.shape.length}`);
    }
    const shape = a.shape.map((d, i) => {
      const s = starts[i]!;
      const e = ends[i]!;
      if (s < 0 || e > d || s > e) throw new ShapeError(`[slice] bad range [${s},${e}) on axis ${i} of size ${d}`);
      return e - s;
    });
    return [{ shape, dtype: a.dtype }];
  },
  [Prim.Pad]: (ins, { lo, hi }) => {
    nIn(Prim.Pad, ins, 1);
    const a = ins[0]!;
    if (lo.length !== a.shape.length || hi.length !== a.shape.length) throw new ShapeError(`[pad] lo/hi rank mismatch`);
    if ([...lo, ...hi].some((v) => !Number.isInteger(v) || v < 0)) {
      throw new ShapeError(`[pad] padding must be non-negative integers, got lo [${lo.join(",")}] hi [${hi.join(",")}]`);
    }
    return [{ shape: a.shape.map((d, i) => d + lo[i]! + hi[i]!), dtype: a.dtype }];
  },
  [Prim.Concat]: (ins, { axis }) => {
    if (ins.length === 0) throw new ShapeError(`[concat] needs at least one input`);
    const first = ins[0]!;
    const ax = normalizeAxis(axis, first.shape.length, "concat");
    let total = 0;
    for (const t of ins) {
      if (t.dtype !== first.dtype) throw new DTypeError(`[concat] dtypes differ: ${first.dtype} vs ${t.dtype}`);
      if (t.shape.length !== first.shape.length || t.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
        throw new ShapeError(`[concat] shapes ${fmt(first.shape)} and ${fmt(t.shape)} differ off axis ${ax}`);
      }
      total += t.shape[ax]!;
    }
    const shape = [...first.shape];
    shape[ax] = total;
    return [{ shape, dtype: first.dtype }];
  },
  [Prim.Iota]: (ins, { shape, axis, dtype }) => {
    nIn(Prim.Iota, ins, 0);
    normalizeAxis(axis, shape.length, "iota");
    return [{ shape, dtype }];
  },
  [Prim.BatchMatmul]: (ins) => {
    nIn(Prim.BatchMatmul, ins, 2);
    const [a, b] = [ins[0]!, ins[1]!];
    if (a.shape.length !== 3 || b.shape.length !== 3 || a.shape[0] !== b.shape[0] || a.shape[2] !== b.shape[1]) {
      throw new ShapeError(`[batch_matmul] cannot multiply ${fmt(a.shape)} by ${fmt(b.shape)}`);
    }
    if (a.dtype !== b.dtype) throw new DTypeError(`[batch_matmul] dtypes ${a.dtype} != ${b.dtype}`);
    return [{ shape: [a.shape[0]!, a.shape[1]!, b.shape[2]!], dtype: a.dtype }];
  },
  [Prim.Gather]: (ins) => {
    nIn(Prim.Gather, ins, 2);
    const [x, idx] = [ins[0]!, ins[1]!];
    int32Vector(Prim.Gather, idx, "indices");
    if (x.shape.length < 1) throw new ShapeError(`[gather] operand must have rank >= 1`);
    return [{ shape: [idx.shape[0]!, ...x.shape.slice(1)], dtype: x.dtype }];
  },
  [Prim.ScatterAdd]: (ins, { numRows }) => {
    nIn(Prim.ScatterAdd, ins, 2);
    const [u, idx] = [ins[0]!, ins[1]!];
    int32Vector(Prim.ScatterAdd, idx, "indices");
    if (!Number.isInteger(numRows) || numRows < 0)
      throw new ShapeError(`[scatter_add] numRows must be a non-negative integer, got ${numRows}`);
    if (u.shape[0] !== idx.shape[0]) throw new ShapeError(`[scatter_add] ${u.shape[0]} rows vs ${idx.shape[0]} indices`);
    return [{ shape: [numRows, ...u.shape.slice(1)], dtype: u.dtype }];
  },
  [Prim.TopK]: (ins, { k }) => {
    nIn(Prim.TopK, ins, 1);
    const a = ins[0]!;
    const n = a.shape[a.shape.length - 1];
    if (n === undefined || !Number.isInteger(k) || k < 0 || k > n) {
      throw new ShapeError(`[top_k] k=${k} invalid for last axis of ${fmt(a.shape)}`);
    }
    const shape = [...a.shape.slice(0, -1), k];
    return [
      { shape, dtype: a.dtype },
      { shape, dtype: "int32" },
    ];
  },
  [Prim.Argsort]: (ins) => {
    nIn(Prim.Argsort, ins, 1);
    if (ins[0]!.shape.length < 1) throw new ShapeError(`[argsort] needs rank >= 1`);
    return [{ shape: ins[0]!.shape, dtype: "int32" }];
  },
  [Prim.Bincount]: (ins, { length }) => {
    nIn(Prim.Bincount, ins, 1);
    int32Vector(Prim.Bincount, ins[0]!, "input");
    if (!Number.isInteger(length) || length < 0) throw new ShapeError(`[bincount] length must be a non-negative integer, got ${length}`);
    return [{ shape: [length], dtype: "int32" }];
  },
  [Prim.Cumsum]: (ins, { axis }) => {
    nIn(Prim.Cumsum, ins, 1);
    normalizeAxis(axis, ins[0]!.shape.length, "cumsum");
    return [{ shape: ins[0]!.shape, dtype: ins[0]!.dtype }];
  },
  [Prim.Gmm]: (ins, { transposeRhs }) => {
    nIn(Prim.Gmm, ins, 3);
    const [l, r, g] = [ins[0]!, ins[1]!, ins[2]!];
    int32Vector(Prim.Gmm, g, "groupSizes");
    const k = transposeRhs ? r.shape[2] : r.shape[1];
    const n = transposeRhs ? r.shape[1] : r.shape[2];
    if (l.shape.length !== 2 || r.shape.length !== 3 || l.shape[1] !== k) {
      throw new ShapeError(`[gmm] lhs ${fmt(l.shape)} incompatible with rhs ${fmt(r.shape)} (transposeRhs=${transposeRhs})`);
    }
    if (r.shape[0] !== g.shape[0]) throw new ShapeError(`[gmm] rhs groups (${r.shape[0]}) != groupSizes (${g.shape[0]})`);
    if (l.dtype !== r.dtype) throw new DTypeError(`[gmm] dtypes ${l.dtype} != ${r.dtype}`);
    return [{ shape: [l.shape[0]!, n!], dtype: l.dtype }];
  },
  [Prim.Tgmm]: (ins) => {
    nIn(Prim.Tgmm, ins, 3);
    const [l, r, g] = [ins[0]!, ins[1]!, ins[2]!];
    int32Vector(Prim.Tgmm, g, "groupSizes");
    if (l.shape.length !== 2 || r.shape.length !== 2 || l.shape[0] !== r.shape[0]) {
      throw new ShapeError(`[tgmm] lhs ${fmt(l.shape)} and rhs ${fmt(r.shape)} must share rows`);
    }
    if (l.dtype !== r.dtype) throw new DTypeError(`[tgmm] dtypes ${l.dtype} != ${r.dtype}`);
    return [{ shape: [g.shape[0]!, l.shape[1]!, r.shape[1]!], dtype: l.dtype }];
  },
  [Prim.Quantize]: quantizeShape,
  [Prim.QuantizedGmm]: quantizedGmmShape,
  [Prim.ExpertFfn]: expertFfnShape,
  [Prim.ExpertFfnBwd]: expertFfnBwdShape,
  [Prim.AdamwStep]: adamwStepShape,
  [Prim.SgdStep]: sgdStepShape,
};
