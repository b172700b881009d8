import { kindOf, tensorArg } from "./args.js";
import { MoeError, ShapeError } from "../core/errors.js";
import { fmt, normalizeAxis, resolveReshape, shapesEqual, size } from "../core/shape.js";
import type { Tensor } from "../core/tensor.js";
import { Prim } from "../prims/prims.js";
import { bind1 } from "../autodiff/bind.js";

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  tensorArg(x, "reshape");
  const s = resolveReshape(x.shape, shape);
  if (shapesEqual(s, x.shape)) return x;
  return bind1(Prim.Reshape, [x], { shape: s });
}

export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  tensorArg(x, "transpose");
  const p = perm ?? x.shape.map((_, i) => x.shape.length - 1 - i);
  if (p.every((v, i) => v === i)) return x;
  return bind1(Prim.Transpose, [x], { perm: p });
}

/** NumPy broadcasting to `shape` (leading axes are added). */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  tensorArg(x, "broadcastTo");
  if (shapesEqual(x.shape, shape)) return x;
  if (x.shape.length > shape.length) throw new ShapeError(`[broadcast_to] cannot broadcast ${fmt(x.shape)} to ${fmt(shape)}`);
  const lifted = [...new Array<number>(shape.length - x.shape.length).fill(1), ...x.shape];
  return bind1(Prim.BroadcastTo, [reshape(x, lifted)], { shape });
}

export function expandDims(x: Tensor, axis: number): Tensor {
  tensorArg(x, "expandDims");
  const ax = normalizeAxis(axis, x.shape.length + 1, "expand_dims");
  const s = [...x.shape];
  s.splice(ax, 0, 1);
  return reshape(x, s);
}

export function squeeze(x: Tensor, axis: number): Tensor {
  tensorArg(x, "squeeze");
  const ax = normalizeAxis(axis, x.shape.length, "squeeze");
  if (x.shape[ax] !== 1) throw new ShapeError(`[squeeze] axis ${axis} of ${fmt(x.shape)} is not 1`);
  return reshape(
    x,
    x.shape.filter((_, i) => i !== ax),
  );
}

/** x[starts:ends] per axis (missing entries take the full range). */
export function slice(x: Tensor, starts: readonly number[], ends?: readonly (number | undefined)[]): Tensor {
  tensorArg(x, "slice");
  const st = x.shape.map((_, i) => starts[i] ?? 0);
  const en = x.shape.map((d, i) => ends?.[i] ?? d);
  if (st.every((s) => s === 0) && en.every((e, i) => e === x.shape[i])) return x;
  return bind1(Prim.Slice, [x], { starts: st, ends: en });
}

/** Slice along one axis. */
export function sliceAxis(x: Tensor, axis: number, start: number, end: number): Tensor {
  tensorArg(x, "sliceAxis");
  const ax = normalizeAxis(axis, x.shape.length, "slice");
  const st = x.shape.map(() => 0);
  const en = [...x.shape];
  st[ax] = start;
  en[ax] = end;
  return slice(x, st, en);
}

/** Zero padding: lo/hi elements before/after each axis. */
export function pad(x: Tensor, lo: readonly number[], hi: readonly number[]): Tensor {
  tensorArg(x, "pad");
  if (lo.every((v) => v === 0) && hi.every((v) => v === 0)) return x;
  return bind1(Prim.Pad, [x], { lo, hi });
}

export function concatenate(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs)) throw new MoeError(`[concatenate] argument 0 is ${kindOf(xs)}, not an array of Tensors`);
  xs.forEach((x, i) => tensorArg(x, "concatenate", `element ${i} of argument 0`));
  if (xs.length === 1) return xs[0]!;
  return bind1(Prim.Concat, xs, { axis: normalizeAxis(axis, xs[0]!.ndim, "concat") });
}

export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs)) throw new MoeError(`[stack] argument 0 is ${kindOf(xs)}, not an array of Tensors`);
  xs.forEach((x, i) => tensorArg(x, "stack", `element ${i} of argument 0`));
  return concatenate(
    xs.map((x) => expandDims(x, axis)),
    axis,
  );
}

export function flatten(x: Tensor): Tensor {
  tensorArg(x, "flatten");
  return reshape(x, [size(x.shape)]);
}

/** Move one axis to a new position. */
export function moveAxis(x: Tensor, from: number, to: number): Tensor {
  tensorArg(x, "moveAxis");
  const nd = x.shape.length;
  const f = normalizeAxis(from, nd, "move_axis");
  const t = normalizeAxis(to, nd, "move_axis");
  const perm = x.shape.map((_, i) => i).filter((i) => i !== f);
  perm.splice(t, 0, f);
  return transpose(x, perm);
}
