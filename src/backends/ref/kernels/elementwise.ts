// Elementwise kernels: plain loops, float64 arithmetic (JS numbers), written into the output type.
import { allocate, type TypedArray } from "../../../core/dtype.js";
import type { Tensor } from "../../../core/tensor.js";
import type { Aval } from "../../../prims/shape-rules.js";

export function mapUnary(a: Tensor, out: Aval, f: (x: number) => number): TypedArray {
  const o = allocate(out.dtype, a.size);
  const x = a.data;
  for (let i = 0; i < o.length; i++) o[i] = f(x[i]!);
  return o;
}

export function mapBinary(a: Tensor, b: Tensor, out: Aval, f: (x: number, y: number) => number): TypedArray {
  const o = allocate(out.dtype, a.size);
  const x = a.data;
  const y = b.data;
  for (let i = 0; i < o.length; i++) o[i] = f(x[i]!, y[i]!);
  return o;
}

// The two hottest binary ops as their own loops (no call per element); all-float32 operands get a loop of their
// own too, so that its element accesses see one array type.
export function add(a: Tensor, b: Tensor, out: Aval): TypedArray {
  const o = allocate(out.dtype, a.size);
  const x = a.data;
  const y = b.data;
  if (x instanceof Float32Array && y instanceof Float32Array && o instanceof Float32Array) {
    addF32(x, y, o);
    return o;
  }
  for (let i = 0; i < o.length; i++) o[i] = x[i]! + y[i]!;
  return o;
}

function addF32(x: Float32Array, y: Float32Array, o: Float32Array): void {
  for (let i = 0; i < o.length; i++) o[i] = x[i]! + y[i]!;
}

export function mul(a: Tensor, b: Tensor, out: Aval): TypedArray {
  const o = allocate(out.dtype, a.size);
  const x = a.data;
  const y = b.data;
  if (x instanceof Float32Array && y instanceof Float32Array && o instanceof Float32Array) {
    mulF32(x, y, o);
    return o;
  }
  for (let i = 0; i < o.length; i++) o[i] = x[i]! * y[i]!;
  return o;
}

function mulF32(x: Float32Array, y: Float32Array, o: Float32Array): void {
  for (let i = 0; i < o.length; i++) o[i] = x[i]! * y[i]!;
}

export function where(c: Tensor, a: Tensor, b: Tensor, out: Aval): TypedArray {
  const o = allocate(out.dtype, a.size);
  for (let i = 0; i < o.length; i++) o[i] = c.data[i] !== 0 ? a.data[i]! : b.data[i]!;
  return o;
}

export const sigmoid = (x: number): number => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));

// floor division and modulo with the sign of the divisor (numpy/jax semantics)
export const floorDiv = (x: number, y: number): number => Math.floor(x / y);
export const mod = (x: number, y: number): number => x - Math.floor(x / y) * y;

/** 2-way max/min; NaN propagates. */
export const max2 = (x: number, y: number): number => (Number.isNaN(x) || Number.isNaN(y) ? NaN : x > y ? x : y);
export const min2 = (x: number, y: number): number => (Number.isNaN(x) || Number.isNaN(y) ? NaN : x < y ? x : y);
