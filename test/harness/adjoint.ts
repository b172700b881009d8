// Adjoint identity <A x, y> = <x, Aᵀ y> for linear maps, with Aᵀ from the library's vjp.
import { isFloat } from "../../src/core/dtype.js";
import type { Tensor } from "../../src/core/tensor.js";
import { vjp } from "../../src/autodiff/grad.js";
import { Rng } from "./random.js";

export interface AdjointResult {
  /** <A x, y> */
  lhs: number;
  /** sum over float inputs of <x_i, (Aᵀ y)_i> */
  rhs: number;
  /**
   * |lhs - rhs| / (‖Ax‖‖y‖ + Σ‖x_i‖‖(Aᵀy)_i‖): relative to the Cauchy–Schwarz bound of the two
   * inner products, so cancellation in a small <Ax,y> does not inflate it; 0 when all are 0
   */
  relErr: number;
  /** the cotangents Aᵀ y, one per input */
  transposed: Tensor[];
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/**
 * Checks the adjoint identity of `f`, linear jointly in its float inputs (int32 inputs are held
 * fixed). The output cotangent y is N(0,1) from `seed` unless given. Throws if a cotangent's shape
 * differs from its input's.
 */
export function adjointCheck(f: (...xs: Tensor[]) => Tensor, inputs: readonly Tensor[], seed: number | Tensor = 7): AdjointResult {
  const { outputs, pullback } = vjp((...xs: Tensor[]) => [f(...xs)], ...inputs);
  const ax = outputs[0]!;
  const y = typeof seed === "number" ? new Rng(seed).normal(ax.shape, ax.dtype) : seed;
  if (y.shape.join() !== ax.shape.join())
    throw new Error(`adjointCheck: cotangent shape [${y.shape.join(",")}] != output [${ax.shape.join(",")}]`);
  const transposed = pullback([y]);
  let rhs = 0;
  let scale = 0;
  inputs.forEach((x, i) => {
    const t = transposed[i]!;
    if (t.shape.join() !== x.shape.join()) {
      throw new Error(`adjointCheck: Aᵀy for input ${i} has shape [${t.shape.join(",")}], input has [${x.shape.join(",")}]`);
    }
    if (isFloat(x.dtype)) {
      rhs += dot(x.data, t.data);
      scale += Math.sqrt(dot(x.data, x.data) * dot(t.data, t.data));
    }
  });
  const lhs = dot(ax.data, y.data);
  scale += Math.sqrt(dot(ax.data, ax.data) * dot(y.data, y.data));
  const relErr = scale === 0 ? 0 : Math.abs(lhs - rhs) / Math.max(scale, 1e-300);
  return { lhs, rhs, relErr, transposed };
}

/** adjointCheck that throws unless relErr <= tol (default 1e-12, for float64 inputs). */
export function assertAdjoint(
  f: (...xs: Tensor[]) => Tensor,
  inputs: readonly Tensor[],
  opts: { tol?: number; seed?: number } = {},
): AdjointResult {
  const r = adjointCheck(f, inputs, opts.seed ?? 7);
  const tol = opts.tol ?? 1e-12;
  if (!(r.relErr <= tol)) {
    throw new Error(`adjoint identity fails: <Ax,y> = ${r.lhs}, <x,Aᵀy> = ${r.rhs}, rel err ${r.relErr.toExponential(3)} > ${tol}`);
  }
  return r;
}
