// The served variant of the fused expert FFN (prims/expert-ffn.ts, params.quantized): the op composition of serve
// mode step by step on the reference kernels (gather, Quantize per row when lhsBits > 0, QuantizedGmm, bias add,
// GLU, QuantizedGmm, bias add, combine), each result rounded to the layer's dtype where that composition rounds it,
// so it gives the composition's bits.
import { toBf16 } from "../../../core/dtype.js";
import type { Tensor } from "../../../core/tensor.js";
import { Tensor as T } from "../../../core/tensor.js";
import { checkExpertFfn, expertFfnInputs, type ExpertFfnParams } from "../../../prims/expert-ffn.js";
import type { QuantizedGmmParams } from "../../../prims/quantized-gmm.js";
import { gluRounded } from "./glu.js";
import { combineRows, routing } from "./expert-ffn.js";
import { quantize } from "./quantize.js";
import { quantizedGmm } from "./quantized-gmm.js";

type Dt = ExpertFfnParams["dtype"];

/**
 * rows [R,k] (values of the layer's dtype) times a served weight → [R,n] in that dtype: QuantizedGmm in it
 * (weight-only), or the rows quantized per row first when `bits` > 0 and the float32 product cast to it.
 */
function servedGmm(
  rows: Float32Array,
  R: number,
  k: number,
  w: { codes: Tensor; scales: Tensor; gs: Tensor },
  q: QuantizedGmmParams,
  bits: number,
  dt: Dt,
): Float32Array {
  const lhs = new T(rows, [R, k], dt);
  if (bits === 0) return quantizedGmm([lhs, w.codes, w.scales, w.gs], q, { shape: [R, q.columns], dtype: dt }) as Float32Array;
  const qp = { bits, axes: [1], flavour: "aqt" as const };
  const [v, s] = quantize(lhs, undefined, qp, [
    { shape: [R, k], dtype: "int32" },
    { shape: [R, 1], dtype: "float32" },
  ]);
  const ins = [new T(v!, [R, k], "int32"), w.codes, w.scales, w.gs, new T(s!, [R, 1], "float32")];
  const y = quantizedGmm(ins, q, { shape: [R, q.columns], dtype: "float32" }) as Float32Array;
  if (dt === "bfloat16") for (let i = 0; i < y.length; i++) y[i] = toBf16(y[i]!);
  return y;
}

export function expertFfnQuantized(ins: readonly Tensor[], p: ExpertFfnParams): Float32Array {
  const d = checkExpertFfn("expert_ffn", ins, p, 0);
  const { D, H, R } = d;
  const a = expertFfnInputs(ins, p);
  const { format, lhsBits } = p.quantized!;
  const { token, expert, rowOf } = routing(a.order, a.groupSizes, d, "expert_ffn");
  const dt = p.dtype;
  const rnd = dt === "bfloat16" ? toBf16 : Math.fround;
  // x and the biases as the composition's casts to the layer's dtype leave them
  const read = (t: Tensor | undefined): Float32Array => Float32Array.from(t?.data ?? [], (v) => rnd(v));
  const [x, b0, b1, bo] = [read(a.x), read(a.b0), read(a.b1), read(a.bo)];
  const rows = new Float32Array(R * D);
  for (let r = 0; r < R; r++) if (expert[r]! >= 0) rows.set(x.subarray(token[r]! * D, (token[r]! + 1) * D), r * D);
  const up = { format, columns: H };
  const h0 = servedGmm(rows, R, D, { codes: a.wi0, scales: a.s0!, gs: a.groupSizes }, up, lhsBits, dt);
  const h1 = servedGmm(rows, R, D, { codes: a.wi1, scales: a.s1!, gs: a.groupSizes }, up, lhsBits, dt);
  const glu = gluRounded(p, rnd);
  const act = new Float32Array(R * H);
  for (let r = 0; r < R; r++) {
    const e = expert[r]!;
    if (e < 0) continue;
    for (let j = 0; j < H; j++) {
      let [v0, v1] = [h0[r * H + j]!, h1[r * H + j]!];
      if (p.hasBias) {
        v0 = rnd(v0 + b0[e * H + j]!);
        v1 = rnd(v1 + b1[e * H + j]!);
      }
      act[r * H + j] = glu(v0, v1);
    }
  }
  const o = servedGmm(act, R, H, { codes: a.wo, scales: a.so!, gs: a.groupSizes }, { format, columns: D }, lhsBits, dt);
  if (p.hasBias) {
    for (let r = 0; r < R; r++) {
      const e = expert[r]!;
      if (e < 0) continue;
      for (let q = 0; q < D; q++) o[r * D + q] = rnd(o[r * D + q]! + bo[e * D + q]!);
    }
  }
  return combineRows(o, rowOf, p.hasCombineWeights ? a.w!.data : undefined, d);
}
