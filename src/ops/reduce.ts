import { tensorArg } from "./args.js";
import { normalizeAxis } from "../core/shape.js";
import type { Tensor } from "../core/tensor.js";
import { Prim } from "../prims/prims.js";
import { bind1 } from "../autodiff/bind.js";
import { div } from "./elementwise.js";
import { reshape } from "./movement.js";

function axesOf(x: Tensor, axis?: number | readonly number[]): number[] {
  if (axis === undefined) return x.shape.map((_, i) => i);
  const list = typeof axis === "number" ? [axis] : axis;
  return [...new Set(list.map((a) => normalizeAxis(a, x.shape.length, "reduce")))].sort((a, b) => a - b);
}

function keep(x: Tensor, r: Tensor, axes: readonly number[], keepdims: boolean): Tensor {
  if (!keepdims) return r;
  return reshape(
    r,
    x.shape.map((d, i) => (axes.includes(i) ? 1 : d)),
  );
}

/** Sum over `axis` (all axes if omitted). */
export function sum(x: Tensor, axis?: number | readonly number[], keepdims = false): Tensor {
  tensorArg(x, "sum");
  const axes = axesOf(x, axis);
  if (axes.length === 0) return x;
  return keep(x, bind1(Prim.ReduceSum, [x], { axes }), axes, keepdims);
}

export function max(x: Tensor, axis?: number | readonly number[], keepdims = false): Tensor {
  tensorArg(x, "max");
  const axes = axesOf(x, axis);
  if (axes.length === 0) return x;
  return keep(x, bind1(Prim.ReduceMax, [x], { axes }), axes, keepdims);
}

export function mean(x: Tensor, axis?: number | readonly number[], keepdims = false): Tensor {
  tensorArg(x, "mean");
  const axes = axesOf(x, axis);
  let n = 1;
  for (const a of axes) n *= x.shape[a]!;
  return div(sum(x, axes, keepdims), n);
}
