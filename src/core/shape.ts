import type { DType } from "./dtype.js";
import { ShapeError } from "./errors.js";

export type Shape = readonly number[];

/** An abstract value: what a shape rule knows of a tensor. */
export interface Aval {
  readonly shape: Shape;
  readonly dtype: DType;
}

/** Throws unless every dimension of `shape` is a non-negative safe integer; `where` names the caller. */
export function checkShape(shape: Shape, where = "shape"): void {
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i]!;
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new ShapeError(`[${where}] shape ${fmt(shape)}: dimension ${d} at axis ${i} is not a non-negative integer`);
    }
  }
}

/** Number of elements; the shape is checked (a non-integer or negative dimension is an error, never a size). */
export function size(shape: Shape): number {
  checkShape(shape);
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

/** The position [i,j,...] of flat (row-major) index `flat` in `shape`. */
export function positionOf(shape: Shape, flat: number): number[] {
  return strides(shape).map((st, k) => Math.floor(flat / st) % shape[k]!);
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

/** Resolve one -1 in a reshape target; as NumPy, not beside a 0 (any size would fit: an empty batch took 0). */
export function resolveReshape(from: Shape, to: Shape): number[] {
  const n = size(from);
  const known = to.filter((d) => d !== -1);
  const free = to.length - known.length;
  if (free > 1) throw new ShapeError(`[reshape] more than one -1 in ${fmt(to)}`);
  checkShape(known, "reshape");
  const k = size(known);
  if (free === 1 && k === 0) throw new ShapeError(`[reshape] cannot infer the -1 in ${fmt(to)} for ${fmt(from)}: another size is 0`);
  const out = to.map((d) => (d === -1 ? n / k : d));
  if (out.some((d) => !Number.isInteger(d) || d < 0) || size(out) !== n)
    throw new ShapeError(`[reshape] cannot reshape ${fmt(from)} (${n} elements) to ${fmt(to)}`);
  return out;
}

const describe = (v: unknown): string => (Array.isArray(v) ? "a list" : typeof v === "string" ? JSON.stringify(v) : String(v));

/** Nested number arrays, as `tensor()` takes them. */
export type NestedNumbers = number | readonly NestedNumbers[];

/**
 * The shape and row-major elements of nested arrays, which must be rectangular with numbers at the leaves.
 * Level by level rather than recursive, so deep nesting is an error, not a stack overflow.
 */
export function flattenNested(values: NestedNumbers, where = "tensor"): { shape: number[]; flat: number[] } {
  const shape: number[] = [];
  let level: NestedNumbers[] = [values];
  // "values[i][j]..." of the k-th element of the current level
  const at = (k: number): string => `values${shape.map((_, a) => `[${Math.floor(k / size(shape.slice(a + 1))) % shape[a]!}]`).join("")}`;
  const fail = (k: number, what: string): never => {
    throw new ShapeError(`[${where}] ${at(k)} ${what}`);
  };
  while (level.length > 0 && Array.isArray(level[0])) {
    const n = (level[0] as readonly NestedNumbers[]).length;
    const next: NestedNumbers[] = [];
    level.forEach((v, k) => {
      if (!Array.isArray(v)) fail(k, `is ${describe(v)} where ${at(0)} is a list`);
      if ((v as readonly NestedNumbers[]).length !== n)
        fail(k, `has ${(v as readonly NestedNumbers[]).length} elements where ${at(0)} has ${n} (ragged nesting)`);
      for (const x of v as readonly NestedNumbers[]) next.push(x);
    });
    shape.push(n);
    level = next;
  }
  level.forEach((v, k) => typeof v === "number" || fail(k, `is ${describe(v)}, not a number`));
  return { shape, flat: level as number[] };
}
