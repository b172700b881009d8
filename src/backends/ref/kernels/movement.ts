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

export function transpose(a: Tensor, perm: readonly number[], out: Aval): TypedArray {
  const o = allocate(out.dtype, a.size);
  const st = strides(a.shape);
  const pst = perm.map((p) => st[p]!);
  forEachIndex(out.shape, (flat, idx) => {
    let src = 0;
    for (let d = 0; d < idx.length; d++) src += idx[d]! * pst[d]!;
    o[flat] = a.data[src]!;
  });
  return o;
}

export function broadcastTo(a: Tensor, out: Aval): TypedArray {
  const o = allocate(out.dtype, size(out.shape));
  const st = strides(a.shape).map((s, i) => (a.shape[i] === 1 ? 0 : s));
  forEachIndex(out.shape, (flat, idx) => {
    let src = 0;
    for (let d = 0; d < idx.length; d++) src += idx[d]! * st[d]!;
    o[flat] = a.data[src]!;
  });
  return o;
}

export function slice(a: Tensor, starts: readonly number[], out: Aval): TypedArray {
  const o = allocate(out.dtype, size(out.shape));
  const st = strides(a.shape);
  forEachIndex(out.shape, (flat, idx) => {
    let src = 0;
    for (let d = 0; d < idx.length; d++) src += (idx[d]! + starts[d]!) * st[d]!;
    o[flat] = a.data[src]!;
  });
  return o;
}

export function pad(a: Tensor, lo: readonly number[], out: Aval): TypedArray {
  const o = allocate(out.dtype, size(out.shape));
  const st = strides(out.shape);
  forEachIndex(a.shape, (flat, idx) => {
    let dst = 0;
    for (let d = 0; d < idx.length; d++) dst += (idx[d]! + lo[d]!) * st[d]!;
    o[dst] = a.data[flat]!;
  });
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
