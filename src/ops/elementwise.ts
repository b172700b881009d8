import { kindOf } from "./args.js";
import { isFloat, promote, type DType } from "../core/dtype.js";
import { MoeError } from "../core/errors.js";
import { broadcastShapes, shapesEqual } from "../core/shape.js";
import { full, Tensor } from "../core/tensor.js";
import { Prim } from "../prims/prims.js";
import { bind1 } from "../autodiff/bind.js";
import { broadcastTo } from "./movement.js";

export type TensorLike = Tensor | number;

/** Scalars take the tensor operand's dtype (weak typing, as in JAX). */
function operands(a: TensorLike, b: TensorLike, where: string): [Tensor, Tensor] {
  for (const [i, v] of [a, b].entries())
    if (typeof v !== "number" && !(v instanceof Tensor))
      throw new MoeError(`[${where}] operand ${i} is ${kindOf(v)}, not a Tensor or a number`);
  if (typeof a === "number" && typeof b === "number") return [full([], a, "float32"), full([], b, "float32")];
  let x = typeof a === "number" ? full([], a, (b as Tensor).dtype) : a;
  let y = typeof b === "number" ? full([], b, x.dtype) : b;
  const dt = promote(x.dtype, y.dtype);
  if (x.dtype !== dt) x = cast(x, dt);
  if (y.dtype !== dt) y = cast(y, dt);
  if (!shapesEqual(x.shape, y.shape)) {
    const shape = broadcastShapes(x.shape, y.shape, where);
    x = broadcastTo(x, shape);
    y = broadcastTo(y, shape);
  }
  return [x, y];
}

const binary =
  (p: Prim) =>
  (a: TensorLike, b: TensorLike): Tensor => {
    const [x, y] = operands(a, b, p);
    return bind1(p, [x, y], {} as never);
  };

export const add = binary(Prim.Add);
export const sub = binary(Prim.Sub);
export const mul = binary(Prim.Mul);
export const div = binary(Prim.Div);
export const maximum = binary(Prim.Max);
export const minimum = binary(Prim.Min);
/** Integer floor division (rounds toward -inf). */
export const floorDivide = binary(Prim.FloorDiv);
/** Integer modulo with the sign of the divisor. */
export const mod = binary(Prim.Mod);
export const less = binary(Prim.Less);
export const lessEqual = binary(Prim.LessEqual);
export const equal = binary(Prim.Equal);
export const greater = binary(Prim.Greater);
export const greaterEqual = (a: TensorLike, b: TensorLike): Tensor => lessEqual(b, a);

const unary =
  (p: Prim) =>
  (x: Tensor): Tensor =>
    bind1(p, [x], {} as never);

export const neg = unary(Prim.Neg);
export const exp = unary(Prim.Exp);
export const log = unary(Prim.Log);
export const log1p = unary(Prim.Log1p);
export const sqrt = unary(Prim.Sqrt);
export const tanh = unary(Prim.Tanh);
export const sigmoid = unary(Prim.Sigmoid);
export const abs = unary(Prim.Abs);
export const sign = unary(Prim.Sign);

export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  return bind1(Prim.Cast, [x], { dtype });
}

/** where(cond != 0, a, b) with broadcasting; cond is int32 (a comparison result). */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = operands(a, b, "where");
  const shape = broadcastShapes(cond.shape, x.shape, "where");
  const c = shapesEqual(cond.shape, shape) ? cond : broadcastTo(cond, shape);
  const xx = shapesEqual(x.shape, shape) ? x : broadcastTo(x, shape);
  const yy = shapesEqual(y.shape, shape) ? y : broadcastTo(y, shape);
  return bind1(Prim.Where, [c, xx, yy], {});
}

export function square(x: Tensor): Tensor {
  return mul(x, x);
}

/** clip(x, lo, hi) = min(max(x, lo), hi); either bound may be omitted. */
export function clip(x: Tensor, lo?: number, hi?: number): Tensor {
  let y = x;
  if (lo !== undefined) y = maximum(y, lo);
  if (hi !== undefined) y = minimum(y, hi);
  return y;
}

export function isFloatTensor(x: Tensor): boolean {
  return isFloat(x.dtype);
}

/** MaxText's `.astype(float32)` for "compute in at least fp32": bf16 goes up to f32, f32/f64 stay. */
export function upcastF32(x: Tensor): Tensor {
  return x.dtype === "bfloat16" ? cast(x, "float32") : x;
}
