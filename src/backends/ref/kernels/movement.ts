import { allocate, type TypedArray } from "../../../core/dtype.js";
import { normalizeAxis, size, strides } from "../../../core/shape.js";
import type { Tensor } from "../../../core/tensor.js";
import type { Aval } from "../../../prims/shape-rules.js";

/** Walk every index of `shape` in row-major order, calling f(flat, index). */
function forEachIndex(shape: readonly number[], f: (flat: number, idx: readonly number[]) => void): void {
  const n = size(shape);
  const idx = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    f(flat, idx);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d]! < shape[d]!) break;
      idx[d] = 0;
    }
  }
}

/**
 * Advances the row-major index `idx` over axes 0..last of `shape` by one step and returns the change of the
 * offset sum_d idx[d] * st[d] (the axes after `last` are the caller's inner loops).
 */
export function advance(idx: number[], shape: readonly number[], st: readonly number[], last: number): number {
  let delta = 0;
  for (let d = last; d >= 0; d--) {
    delta += st[d]!;
    if (++idx[d]! < shape[d]!) return delta;
    delta -= idx[d]! * st[d]!;
    idx[d] = 0;
  }
  return delta;
}

/**
 * dst[flat] = src[offset + sum_d idx[d] * st[d]] over the row-major indices of `shape` (gather form), or, with
 * `scatter`, dst[offset + sum_d idx[d] * st[d]] = src[flat]. The innermost axis runs as a plain loop; the outer
 * index advances like an odometer.
 */
function stridedCopy(
  src: TypedArray,
  dst: TypedArray,
  shape: readonly number[],
  st: readonly number[],
  offset: number,
  scatter = false,
): void {
  const n = size(shape);
  if (n === 0) return;
  const r = shape.length;
  if (r === 0) {
    if (scatter) dst[offset] = src[0]!;
    else dst[0] = src[offset]!;
    return;
  }
  const inner = shape[r - 1]!;
  const s = st[r - 1]!;
  if (!scatter && s !== 1 && r >= 2) {
    blockedGather(src, dst, shape, st, offset);
    return;
  }
  const idx = new Array<number>(r).fill(0);
  let base = offset;
  for (let flat = 0; flat < n; flat += inner) {
    if (scatter) {
      for (let j = 0; j < inner; j++) dst[base + j * s] = src[flat + j]!;
    } else if (s === 1) {
      for (let j = 0; j < inner; j++) dst[flat + j] = src[base + j]!;
    } else {
      for (let j = 0; j < inner; j++) dst[flat + j] = src[base + j * s]!;
    }
    base += advance(idx, shape, st, r - 2);
  }
}

/**
 * stridedCopy's gather with a strided innermost axis (a transpose): the two innermost axes in 32 x 32 tiles, so
 * that both the reads and the writes of a tile stay within a few cache lines.
 */
function blockedGather(src: TypedArray, dst: TypedArray, shape: readonly number[], st: readonly number[], offset: number): void {
  const r = shape.length;
  const rows = shape[r - 2]!;
  const cols = shape[r - 1]!;
  const sa = st[r - 2]!;
  const sb = st[r - 1]!;
  const outer = size(shape.slice(0, r - 2));
  const idx = new Array<number>(Math.max(r - 2, 0)).fill(0);
  const B = 32;
  let base = offset;
  for (let q = 0, flat = 0; q < outer; q++, flat += rows * cols) {
    for (let i0 = 0; i0 < rows; i0 += B) {
      const i1 = Math.min(rows, i0 + B);
      for (let j0 = 0; j0 < cols; j0 += B) {
        const j1 = Math.min(cols, j0 + B);
        for (let i = i0; i < i1; i++) {
          const d = flat + i * cols;
          const sI = base + i * sa;
          for (let j = j0; j < j1; j++) dst[d + j] = src[sI + j * sb]!;
        }
      }
    }
    base += advance(idx, shape, st, r - 3);
  }
}

export function transpose(a: Tensor, perm: readonly number[], out: Aval): TypedArray {
  const o = allocate(out.dtype, a.size);
  const st = strides(a.shape);
  stridedCopy(
    a.data,
    o,
    out.shape,
    perm.map((p) => st[p]!),
    0,
  );
  return o;
}

export function broadcastTo(a: Tensor, out: Aval): TypedArray {
  const o = allocate(out.dtype, size(out.shape));
  if (a.size === 1) {
    o.fill(a.data[0]! as never);
    return o;
  }
  // same rank as out (the shape rule); size-1 axes are read with stride 0
  const st = strides(a.shape).map((s, d) => (a.shape[d] === 1 ? 0 : s));
  stridedCopy(a.data, o, out.shape, st, 0);
  return o;
}

export function slice(a: Tensor, starts: readonly number[], out: Aval): TypedArray {
  const o = allocate(out.dtype, size(out.shape));
  const st = strides(a.shape);
  let offset = 0;
  for (let d = 0; d < st.length; d++) offset += starts[d]! * st[d]!;
  stridedCopy(a.data, o, out.shape, st, offset);
  return o;
}

export function pad(a: Tensor, lo: readonly number[], out: Aval): TypedArray {
  const o = allocate(out.dtype, size(out.shape));
  const st = strides(out.shape);
  let offset = 0;
  for (let d = 0; d < st.length; d++) offset += lo[d]! * st[d]!;
  stridedCopy(a.data, o, a.shape, st, offset, true);
  return o;
}

export function concat(ins: readonly Tensor[], axis: number, out: Aval): TypedArray {
  const ax = normalizeAxis(axis, out.shape.length);
  const o = allocate(out.dtype, size(out.shape));
  const outer = size(out.shape.slice(0, ax));
  const inner = size(out.shape.slice(ax + 1));
  const total = out.shape[ax]!;
  let offset = 0;
  for (const t of ins) {
    const n = t.shape[ax]!;
    for (let p = 0; p < outer; p++) {
      for (let i = 0; i < n * inner; i++) o[(p * total + offset) * inner + i] = t.data[p * n * inner + i]!;
    }
    offset += n;
  }
  return o;
}

export function iota(out: Aval, axis: number): TypedArray {
  const o = allocate(out.dtype, size(out.shape));
  const ax = normalizeAxis(axis, out.shape.length);
  forEachIndex(out.shape, (flat, idx) => {
    o[flat] = idx[ax]!;
  });
  return o;
}
