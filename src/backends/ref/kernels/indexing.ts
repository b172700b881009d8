import { allocate, type TypedArray } from "../../../core/dtype.js";
import { ShapeError } from "../../../core/errors.js";
import { size } from "../../../core/shape.js";
import type { Tensor } from "../../../core/tensor.js";
import type { Aval } from "../../../prims/shape-rules.js";

export function gather(x: Tensor, idx: Tensor, out: Aval): TypedArray {
  const rows = x.shape[0]!;
  const inner = size(x.shape.slice(1));
  const o = allocate(out.dtype, size(out.shape));
  for (let i = 0; i < idx.size; i++) {
    const r = idx.data[i]!;
    if (r < 0 || r >= rows) throw new ShapeError(`[gather] index ${r} at position ${i} out of range [0,${rows})`);
    for (let j = 0; j < inner; j++) o[i * inner + j] = x.data[r * inner + j]!;
  }
  return o;
}

export function scatterAdd(u: Tensor, idx: Tensor, numRows: number, out: Aval): TypedArray {
  const inner = size(u.shape.slice(1));
  const acc = new Float64Array(numRows * inner);
  for (let i = 0; i < idx.size; i++) {
    const r = idx.data[i]!;
    if (r < 0 || r >= numRows) throw new ShapeError(`[scatter_add] index ${r} at position ${i} out of range [0,${numRows})`);
    for (let j = 0; j < inner; j++) acc[r * inner + j] = acc[r * inner + j]! + u.data[i * inner + j]!;
  }
  const o = allocate(out.dtype, acc.length);
  for (let i = 0; i < acc.length; i++) o[i] = acc[i]!;
  return o;
}

/** Descending order, ties to the lower index; NaN sorts first (as the largest), like jax.lax.top_k. */
function greaterFirst(v: ArrayLike<number>): (i: number, j: number) => number {
  return (i, j) => {
    const a = v[i]!;
    const b = v[j]!;
    const an = Number.isNaN(a);
    const bn = Number.isNaN(b);
    if (an || bn) return an && bn ? i - j : an ? -1 : 1;
    return a > b ? -1 : a < b ? 1 : i - j;
  };
}

export function topK(x: Tensor, k: number, outs: readonly Aval[]): TypedArray[] {
  const n = x.shape[x.shape.length - 1]!;
  const rows = n === 0 ? 0 : x.size / n;
  const vals = allocate(outs[0]!.dtype, rows * k);
  const ids = new Int32Array(rows * k);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let r = 0; r < rows; r++) {
    const row = x.data.subarray(r * n, (r + 1) * n);
    order.sort(greaterFirst(row));
    for (let j = 0; j < k; j++) {
      ids[r * k + j] = order[j]!;
      vals[r * k + j] = row[order[j]!]!;
      order[j] = j;
    }
    for (let j = 0; j < n; j++) order[j] = j;
  }
  return [vals, ids];
}

/** Ascending, stable (Array.prototype.sort is stable), NaN last (as numpy/jnp), last axis. */
export function argsort(x: Tensor): TypedArray {
  const n = x.shape[x.shape.length - 1]!;
  const rows = n === 0 ? 0 : x.size / n;
  const o = new Int32Array(x.size);
  for (let r = 0; r < rows; r++) {
    const row = x.data.subarray(r * n, (r + 1) * n);
    const order = Array.from({ length: n }, (_, i) => i);
    order.sort((i, j) => {
      const a = row[i]!;
      const b = row[j]!;
      const an = Number.isNaN(a);
      const bn = Number.isNaN(b);
      if (an || bn) return an && bn ? i - j : an ? 1 : -1;
      return a < b ? -1 : a > b ? 1 : i - j;
    });
    for (let j = 0; j < n; j++) o[r * n + j] = order[j]!;
  }
  return o;
}

export function bincount(x: Tensor, length: number): TypedArray {
  const o = new Int32Array(length);
  for (let i = 0; i < x.size; i++) {
    const v = x.data[i]!;
    if (v >= 0 && v < length) o[v]!++;
  }
  return o;
}
