import { tensorArg } from "./args.js";
import { DTypeError, ShapeError } from "../core/errors.js";
import { fmt, normalizeAxis, size } from "../core/shape.js";
import { Tensor, tensor } from "../core/tensor.js";
import { Prim } from "../prims/prims.js";
import { bind, bind1 } from "../autodiff/bind.js";
import { add, cast, equal, mul } from "./elementwise.js";
import { broadcastTo, expandDims, moveAxis, reshape } from "./movement.js";

function needInt(x: Tensor, where: string): void {
  if (x.dtype !== "int32") throw new DTypeError(`[${where}] indices must be int32, got ${x.dtype}`);
}

/** 0..n-1 as int32 (or another dtype). */
export function arange(n: number, dtype: Tensor["dtype"] = "int32"): Tensor {
  return bind1(Prim.Iota, [], { shape: [n], axis: 0, dtype });
}

export function iota(shape: readonly number[], axis: number, dtype: Tensor["dtype"] = "int32"): Tensor {
  return bind1(Prim.Iota, [], { shape, axis, dtype });
}

/** x.take(idx, axis): gathers slices along `axis` for any-rank int32 `idx`. */
export function take(x: Tensor, idx: Tensor, axis = 0): Tensor {
  needInt(idx, "take");
  const ax = normalizeAxis(axis, x.ndim, "take");
  const moved = ax === 0 ? x : moveAxis(x, ax, 0);
  const g = bind1(Prim.Gather, [moved, reshape(idx, [idx.size])], {});
  const r = reshape(g, [...idx.shape, ...moved.shape.slice(1)]);
  if (ax === 0) return r;
  // gathered axes sit first; move them back to position `ax`
  const nIdx = idx.ndim;
  const rest = moved.shape.length - 1;
  const perm: number[] = [];
  for (let i = 0; i < ax; i++) perm.push(nIdx + i);
  for (let i = 0; i < nIdx; i++) perm.push(i);
  for (let i = ax; i < rest; i++) perm.push(nIdx + i);
  return bind1(Prim.Transpose, [r], { perm });
}

/** Adds rows of `upd` [n,...] into zeros [numRows,...] at int32 `idx` [n]. Adjoint of take(axis 0). */
export function scatterAdd(upd: Tensor, idx: Tensor, numRows: number): Tensor {
  needInt(idx, "scatter_add");
  return bind1(Prim.ScatterAdd, [upd, reshape(idx, [idx.size])], { numRows });
}

/** out[..., j] = x[..., idx[..., j]] along the last axis (jnp.take_along_axis, axis=-1). */
export function takeAlongAxis(x: Tensor, idx: Tensor): Tensor {
  needInt(idx, "take_along_axis");
  const n = x.shape[x.ndim - 1]!;
  const lead = x.shape.slice(0, -1);
  if (idx.ndim !== x.ndim || idx.shape.slice(0, -1).some((d, i) => d !== lead[i])) {
    throw new ShapeError(`[take_along_axis] indices ${fmt(idx.shape)} do not match ${fmt(x.shape)}`);
  }
  const rows = size(lead);
  const k = idx.shape[idx.ndim - 1]!;
  const base = mul(iota([rows, k], 0), n);
  const flatIdx = add(reshape(idx, [rows, k]), base);
  const g = bind1(Prim.Gather, [reshape(x, [rows * n]), reshape(flatIdx, [rows * k])], {});
  return reshape(g, idx.shape);
}

/** Top-k along the last axis: [values, int32 indices], descending, ties to the lower index. */
export function topK(x: Tensor, k: number): [Tensor, Tensor] {
  const [v, i] = bind(Prim.TopK, [x], { k });
  return [v!, i!];
}

/** Stable ascending argsort along the last axis (int32). */
export function argsort(x: Tensor): Tensor {
  return bind1(Prim.Argsort, [x], {});
}

/** Counts of each value in [0,length) of a 1-D (or flattened) int32 tensor. */
export function bincount(x: Tensor, length: number): Tensor {
  needInt(x, "bincount");
  return bind1(Prim.Bincount, [reshape(x, [x.size])], { length });
}

export function cumsum(x: Tensor, axis = -1, reverse = false): Tensor {
  return bind1(Prim.Cumsum, [x], { axis: normalizeAxis(axis, x.ndim, "cumsum"), reverse });
}

/** one_hot(idx, n): [..., n] with 1 where the last index equals idx. */
export function oneHot(idx: Tensor, numClasses: number, dtype: Tensor["dtype"] = "float32"): Tensor {
  needInt(idx, "one_hot");
  const cls = reshape(arange(numClasses), [...new Array<number>(idx.ndim).fill(1), numClasses]);
  const eq = equal(broadcastTo(expandDims(idx, -1), [...idx.shape, numClasses]), broadcastTo(cls, [...idx.shape, numClasses]));
  return cast(eq, dtype);
}

/**
 * jnp.repeat along axis 0. `repeats` is a number (each row repeated) or an int32 [n] tensor.
 * With `totalRepeatLength` the result has exactly that many rows: extra rows repeat the last
 * row; a shortfall truncates (JAX semantics).
 */
export function repeat(x: Tensor, repeats: number | Tensor, totalRepeatLength?: number): Tensor {
  tensorArg(x, "repeat");
  const n = x.shape[0]!;
  const counts = typeof repeats === "number" ? new Array<number>(n).fill(repeats) : Array.from(repeats.data, (v) => Number(v));
  if (counts.length !== n) throw new ShapeError(`[repeat] ${counts.length} repeats for ${n} rows`);
  if (counts.some((c) => c < 0 || !Number.isInteger(c))) throw new ShapeError(`[repeat] repeats must be non-negative integers`);
  const rows: number[] = [];
  counts.forEach((c, i) => {
    for (let j = 0; j < c; j++) rows.push(i);
  });
  let src = rows;
  if (totalRepeatLength !== undefined) {
    src = rows.slice(0, totalRepeatLength);
    while (src.length < totalRepeatLength) src.push(n - 1);
  }
  return take(x, tensor(src, [src.length], "int32"), 0);
}

/** Inverse of a permutation (int32 [n]). */
export function invertPermutation(p: Tensor): Tensor {
  return argsort(p);
}
