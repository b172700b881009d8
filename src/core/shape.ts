import type { DType } from "./dtype.js";
import { ShapeError } from "./errors.js";

export type Shape = readonly number[];

/** An abstract value: what a shape rule knows of a tensor. */
export interface Aval {
  readonly shape: Shape;
  readonly dtype: DType;
}

export function size(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function strides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

export function normalizeAxis(axis: number, ndim: number, where = "axis"): number {
  const a = axis < 0 ? axis + ndim : axis;
  if (a < 0 || a >= ndim || !Number.isInteger(a)) {
    throw new ShapeError(`[${where}] axis ${axis} out of range for rank ${ndim}`);
  }
  return a;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function fmt(shape: Shape): string {
  return `[${shape.join(",")}]`;
}

/** NumPy broadcasting of two shapes. */
export function broadcastShapes(a: Shape, b: Shape, where = "broadcast"): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(`[${where}] shapes ${fmt(a)} and ${fmt(b)} do not broadcast`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Resolve one -1 in a reshape target. */
export function resolveReshape(from: Shape, to: Shape): number[] {
  const n = size(from);
  const known = to.filter((d) => d !== -1);
  const free = to.length - known.length;
  if (free > 1) throw new ShapeError(`[reshape] more than one -1 in ${fmt(to)}`);
  const k = size(known);
  const out = to.map((d) => (d === -1 ? (k === 0 ? 0 : n / k) : d));
  if (size(out) !== n || out.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new ShapeError(`[reshape] cannot reshape ${fmt(from)} (${n} elements) to ${fmt(to)}`);
  }
  return out;
}
