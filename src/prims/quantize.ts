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

export function quantizeShape(ins: readonly Aval[], p: QuantizeParams): Aval[] {
  const [x, noise] = [ins[0], ins[1]];
  if (x === undefined || ins.length > 2 || x.dtype === "int32") throw new DTypeError(`[quantize] expects a float x (and a noise) input`);
  if (noise !== undefined && (noise.dtype === "int32" || !shapesEqual(noise.shape, x.shape)))
    throw new ShapeError(`[quantize] noise ${noise.dtype}${fmt(noise.shape)} must be a float tensor shaped as x ${fmt(x.shape)}`);
  // 8 bits at most: an int32 sum of K products then stays exact up to K = 131071
  if (!Number.isInteger(p.bits) || p.bits < 2 || p.bits > 8)
    throw new ShapeError(`[quantize] bits must be an integer in [2, 8], got ${p.bits}`);
  const axes = p.axes.map((a) => normalizeAxis(a, x.shape.length, "quantize"));
  if (new Set(axes).size !== axes.length) throw new ShapeError(`[quantize] axes [${p.axes.join(",")}] repeat an axis of ${fmt(x.shape)}`);
  return [
    { shape: x.shape, dtype: "int32" },
    { shape: x.shape.map((d, i) => (axes.includes(i) ? 1 : d)), dtype: x.dtype === "float64" ? "float64" : "float32" },
  ];
}
