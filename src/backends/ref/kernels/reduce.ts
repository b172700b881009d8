import { allocate, type TypedArray } from "../../../core/dtype.js";
import { normalizeAxis, size, strides } from "../../../core/shape.js";
import type { Tensor } from "../../../core/tensor.js";
import type { Aval } from "../../../prims/shape-rules.js";
import { max2 } from "./elementwise.js";
import { advance } from "./movement.js";

/**
 * Reduce `axes` of `a` with (acc, x) => acc, starting from `init`, visiting the elements in row-major order
 * (that order fixes float64 rounding). Accumulates in float64. `f` undefined: acc + x.
 */
export function reduceAxes(
  a: Tensor,
  axes: readonly number[],
  out: Aval,
  init: number,
  f?: (acc: number, x: number) => number,
): TypedArray {
  const nd = a.shape.length;
  const red = new Set(axes.map((x) => normalizeAxis(x, nd)));
  const keep = a.shape.map((_, i) => i).filter((i) => !red.has(i));
  const acc = new Float64Array(size(out.shape)).fill(init);
  const keptSt = strides(keep.map((i) => a.shape[i]!));
  // output stride of each input axis (0 for reduced axes)
  const ost = a.shape.map(() => 0);
  keep.forEach((ax, j) => (ost[ax] = keptSt[j]!));
  const data = a.data;
  if (a.size > 0 && nd === 0) {
    acc[0] = f === undefined ? acc[0]! + data[0]! : f(acc[0]!, data[0]!);
  } else if (a.size > 0) {
    const inner = a.shape[nd - 1]!;
    const s = ost[nd - 1]!;
    const idx = new Array<number>(nd).fill(0);
    let o = 0;
    for (let flat = 0; flat < a.size; flat += inner) {
      if (f === undefined && s === 0) {
        acc[o] = data instanceof Float32Array ? sumRunF32(acc[o]!, data, flat, inner) : sumRun(acc[o]!, data, flat, inner);
      } else if (f === undefined) {
        for (let j = 0; j < inner; j++) acc[o + j * s] = acc[o + j * s]! + data[flat + j]!;
      } else {
        for (let j = 0; j < inner; j++) acc[o + j * s] = f(acc[o + j * s]!, data[flat + j]!);
      }
      o += advance(idx, a.shape, ost, nd - 2);
    }
  }
  const o = allocate(out.dtype, acc.length);
  for (let i = 0; i < acc.length; i++) o[i] = acc[i]!;
  return o;
}

// v + data[from] + ... + data[from + n - 1], left to right in float64 (one loop per array type: see add in elementwise.ts)
function sumRunF32(v: number, data: Float32Array, from: number, n: number): number {
  for (let j = 0; j < n; j++) v += data[from + j]!;
  return v;
}

function sumRun(v: number, data: TypedArray, from: number, n: number): number {
  for (let j = 0; j < n; j++) v += data[from + j]!;
  return v;
}

/**
 * softmax along `axis` as its composition computes it: m = max (NaN if any is), e = exp(x - m) and y = e / s with
 * s the float64 sum of e in index order, each result stored in the dtype (float32: rounded once per operation).
 */
export function softmax(a: Tensor, axis: number, out: Aval): TypedArray {
  const ax = normalizeAxis(axis, a.shape.length);
  const n = a.shape[ax]!;
  const inner = size(a.shape.slice(ax + 1));
  const outer = size(a.shape.slice(0, ax));
  const o = allocate(out.dtype, a.size); // holds x - m, then e, then y
  const x = a.data;
  for (let p = 0; p < outer; p++) {
    for (let q = 0; q < inner; q++) {
      const at = (i: number): number => (p * n + i) * inner + q;
      let m = -Infinity;
      for (let i = 0; i < n; i++) m = max2(m, x[at(i)]!);
      for (let i = 0; i < n; i++) o[at(i)] = x[at(i)]! - m;
      for (let i = 0; i < n; i++) o[at(i)] = Math.exp(o[at(i)]!);
      let s = 0;
      for (let i = 0; i < n; i++) s += o[at(i)]!;
      const sd = out.dtype === "float32" ? Math.fround(s) : s;
      for (let i = 0; i < n; i++) o[at(i)] = o[at(i)]! / sd;
    }
  }
  return o;
}

export function cumsum(a: Tensor, axis: number, reverse: boolean, out: Aval): TypedArray {
  const ax = normalizeAxis(axis, a.shape.length);
  const n = a.shape[ax]!;
  const inner = size(a.shape.slice(ax + 1));
  const outer = size(a.shape.slice(0, ax));
  const o = allocate(out.dtype, a.size);
  for (let p = 0; p < outer; p++) {
    for (let q = 0; q < inner; q++) {
      let acc = 0;
      for (let t = 0; t < n; t++) {
        const i = reverse ? n - 1 - t : t;
        const off = (p * n + i) * inner + q;
        acc += a.data[off]!;
        o[off] = acc;
      }
    }
  }
  return o;
}
