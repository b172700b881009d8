// Abs-max integer quantization per slice (prims/quantize.ts states the contract), in float64.
import { allocate, type TypedArray } from "../../../core/dtype.js";
import { MoeError } from "../../../core/errors.js";
import { strides } from "../../../core/shape.js";
import type { Tensor } from "../../../core/tensor.js";
import type { QuantizeParams } from "../../../prims/quantize.js";
import type { Aval } from "../../../prims/shape-rules.js";

/** Round half to even (x − 0.5 and x + 0.5 are exact for the |x| < 2^52 this sees). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The scale-slice index of every element of `shape` (its flat index in the keepdims scale shape). */
function sliceOf(shape: readonly number[], scaleShape: readonly number[]): Int32Array {
  const n = shape.reduce((a, d) => a * d, 1);
  const st = strides(scaleShape).map((s, i) => (scaleShape[i] === 1 ? 0 : s));
  const idx = new Array<number>(shape.length).fill(0);
  const out = new Int32Array(n);
  let flat = 0;
  for (let i = 0; i < n; i++) {
    out[i] = flat;
    for (let ax = shape.length - 1; ax >= 0; ax--) {
      idx[ax]!++;
      flat += st[ax]!;
      if (idx[ax]! < shape[ax]!) break;
      flat -= st[ax]! * idx[ax]!;
      idx[ax] = 0;
    }
  }
  return out;
}

export function quantize(x: Tensor, noise: Tensor | undefined, p: QuantizeParams, outs: readonly Aval[]): TypedArray[] {
  const [qOut, sOut] = [outs[0]!, outs[1]!];
  const slice = sliceOf(x.shape, sOut.shape);
  const absmax = new Float64Array(sOut.shape.reduce((a, d) => a * d, 1));
  const data = x.data;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (!Number.isFinite(v)) throw new MoeError(`[quantize] element ${i} of the input is ${v}: abs-max scales need finite values`);
    absmax[slice[i]!] = Math.max(absmax[slice[i]!]!, Math.abs(v));
  }
  const Q = 2 ** (p.bits - 1) - 0.5;
  const scales = allocate(sOut.dtype, absmax.length);
  for (let j = 0; j < absmax.length; j++) scales[j] = absmax[j] === 0 ? 1 : absmax[j]! / Q;
  const q = allocate(qOut.dtype, data.length);
  const [lo, hi] = p.flavour === "aqt" ? [-(Q - 0.5), Q - 0.5] : [-(Q + 0.5), Q - 0.5];
  for (let i = 0; i < data.length; i++) {
    const m = absmax[slice[i]!]!;
    const x0 = data[i]!;
    if (m === 0) continue;
    // v = x / s; the abs-max element lands on exactly ±Q
    const v = Math.abs(x0) === m ? Math.sign(x0) * Q : x0 / (m / Q);
    const u = noise === undefined ? 0 : noise.data[i]!;
    // aqt clips v before the noise and the rounding; qwix rounds, then saturates (−Q rounds to −Q − 0.5 = −2^(b−1),
    // +Q to 2^(b−1), cut to 2^(b−1) − 1)
    q[i] = p.flavour === "aqt" ? roundHalfEven(Math.min(hi, Math.max(lo, v)) + u) : Math.min(hi, Math.max(lo, roundHalfEven(v + u)));
  }
  return [q, scales];
}
