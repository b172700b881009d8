// Optimizer updates as primitives. Their outputs are their updated inputs: the kernels write the parameter and the
// optimizer state in place (the arrays are donated) and return the same arrays. Not differentiable.
import { DTypeError, ShapeError } from "../core/errors.js";
import { fmt, shapesEqual, type Aval } from "../core/shape.js";

/**
 * One AdamW update (optax.adamw) with float32 scalars: m = b1·m + omb1·g, v = b2·v + omb2·g², and
 * p −= lr·((m/bc1) / (sqrt(v/bc2) + eps) + weightDecay·p), every operation rounded to float32 in that order.
 */
export interface AdamwStepParams {
  lr: number;
  b1: number;
  omb1: number;
  b2: number;
  omb2: number;
  /** bias corrections 1 − b1^t, 1 − b2^t */
  bc1: number;
  bc2: number;
  eps: number;
  weightDecay: number;
}

/** One SGD update: d = g, or with a trace input d = momentum·trace + g (trace = d); p −= lr·d. */
export interface SgdStepParams {
  lr: number;
  momentum: number;
  hasTrace: boolean;
}

function sameF32(where: string, names: readonly string[], ins: readonly Aval[]): Aval[] {
  if (ins.length !== names.length)
    throw new ShapeError(`[${where}] expects ${names.length} inputs (${names.join(", ")}), got ${ins.length}`);
  const p = ins[0]!;
  ins.forEach((a, i) => {
    if (a.dtype !== "float32") throw new DTypeError(`[${where}] ${names[i]} must be float32, got ${a.dtype}`);
    if (!shapesEqual(a.shape, p.shape))
      throw new ShapeError(`[${where}] ${names[i]} has shape ${fmt(a.shape)}, the parameter ${fmt(p.shape)}`);
  });
  return [p];
}

/** Inputs p, g, m, v; outputs p, m, v (updated). */
export function adamwStepShape(ins: readonly Aval[]): Aval[] {
  const [p] = sameF32("adamw_step", ["p", "g", "m", "v"], ins);
  return [p!, p!, p!];
}

/** Inputs p, g (and trace); outputs p (and trace), updated. */
export function sgdStepShape(ins: readonly Aval[], params: SgdStepParams): Aval[] {
  const [p] = sameF32("sgd_step", params.hasTrace ? ["p", "g", "trace"] : ["p", "g"], ins);
  return params.hasTrace ? [p!, p!] : [p!];
}
