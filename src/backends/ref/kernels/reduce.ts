import { allocate, type TypedArray } from "../../../core/dtype.js";
import { normalizeAxis, size, strides } from "../../../core/shape.js";
import type { Tensor } from "../../../core/tensor.js";
import type { Aval } from "../../../prims/shape-rules.js";

/** Reduce `axes` of `a` with (acc, x) => acc, starting from `init`. Accumulates in float64. */
export function reduceAxes(
  a: Tensor,
  axes: readonly number[],
  out: Aval,
  init: number,
  f: (acc: number, x: number) => number,
): TypedArray {
  const nd = a.shape.length;
  const red = new Set(axes.map((x) => normalizeAxis(x, nd)));
  const keep = a.shape.map((_, i) => i).filter((i) => !red.has(i));
  const acc = new Float64Array(size(out.shape)).fill(init);
  const outSt = strides(keep.map((i) => a.shape[i]!));
  const idx = new Array<number>(nd).fill(0);
  for (let flat = 0; flat < a.size; flat++) {
    let o = 0;
    for (let j = 0; j < keep.length; j++) o += idx[keep[j]!]! * outSt[j]!;
    acc[o] = f(acc[o]!, a.data[flat]!);
    for (let d = nd - 1; d >= 0; d--) {
      if (++idx[d]! < a.shape[d]!) break;
      idx[d] = 0;
    }
  }
  const o = allocate(out.dtype, acc.length);
  for (let i = 0; i < acc.length; i++) o[i] = acc[i]!;
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
