// Symmetric abs-max integer quantization (QUANTIZATION.md): one scale per slice, the slice being every element that
// shares the indices off `axes` (a matmul's contracting axes). Not differentiable: ops/quantize.ts gives the
// quantized matmuls their straight-through gradients.
import { DTypeError, ShapeError } from "../core/errors.js";
import { fmt, normalizeAxis, shapesEqual, type Aval } from "../core/shape.js";

/** "aqt": clip to ±(Q − 0.5), round half to even. "qwix": round half to even, then saturate to [−2^(b−1), 2^(b−1) − 1]. */
export type QuantFlavour = "aqt" | "qwix";

/**
 * Q = 2^(bits−1) − 0.5 and s = absmax / Q per slice (absmax 0: s = 1); v = x / s with the abs-max element at exactly
 * ±Q; q = round-half-even of v, clipped (aqt) or saturated (qwix). Outputs: q (int32, x's shape, |q| ≤ 2^(bits−1))
 * and s (x's shape with `axes` set to 1; float64 for a float64 x, else float32).
 *
 * Stochastic rounding: a second input `noise` (x's shape, values in [−0.5, 0.5)) is added before rounding, after
 * aqt's clip (AQT's order): with uniform noise, E[q] = v.
 */
export interface QuantizeParams {
  bits: number;
  /** the slice: one scale per index of the other axes */
  axes: readonly number[];
  flavour: QuantFlavour;
}

const MAX_QUANT_BITS = 8;

export function quantizeShape(ins: readonly Aval[], p: QuantizeParams): Aval[] {
  if (ins.length !== 1 && ins.length !== 2) throw new ShapeError(`[quantize] expects x (and noise), got ${ins.length} inputs`);
  const x = ins[0]!;
  const noise = ins[1];
  if (noise !== undefined && (noise.dtype === "int32" || !shapesEqual(noise.shape, x.shape))) {
    throw new ShapeError(`[quantize] noise ${noise.dtype}${fmt(noise.shape)} must be a float tensor shaped as x ${fmt(x.shape)}`);
  }
  if (x.dtype === "int32") throw new DTypeError(`[quantize] needs a float input, got int32`);
  if (!Number.isInteger(p.bits) || p.bits < 2 || p.bits > MAX_QUANT_BITS) {
    throw new ShapeError(`[quantize] bits must be an integer in [2, ${MAX_QUANT_BITS}], got ${p.bits}`);
  }
  if (p.flavour !== "aqt" && p.flavour !== "qwix") throw new ShapeError(`[quantize] flavour must be aqt or qwix, got ${String(p.flavour)}`);
  const axes = p.axes.map((a) => normalizeAxis(a, x.shape.length, "quantize"));
  if (new Set(axes).size !== axes.length) throw new ShapeError(`[quantize] axes [${p.axes.join(",")}] repeat an axis of ${fmt(x.shape)}`);
  return [
    { shape: x.shape, dtype: "int32" },
    { shape: x.shape.map((d, i) => (axes.includes(i) ? 1 : d)), dtype: x.dtype === "float64" ? "float64" : "float32" },
  ];
}
