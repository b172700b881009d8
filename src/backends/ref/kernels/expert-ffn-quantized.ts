// The served variant of the fused expert FFN (prims/expert-ffn.ts, params.quantized): the op composition of serve
// mode step by step on the reference kernels (gather, Quantize per row when lhsBits > 0, QuantizedGmm, float32 bias
// add, GLU, QuantizedGmm, bias add, combine), so it gives that composition's bits.
import type { Tensor } from "../../../core/tensor.js";
import { Tensor as T } from "../../../core/tensor.js";
import { checkExpertFfn, expertFfnInputs, type ExpertFfnParams } from "../../../prims/expert-ffn.js";
import type { QuantizedGmmParams } from "../../../prims/quantized-gmm.js";
import { gluRounded } from "./glu.js";
import { combineRows, routing } from "./expert-ffn.js";
import { quantize } from "./quantize.js";
import { quantizedGmm } from "./quantized-gmm.js";

/** rows [R,k] float32 times a served weight → [R,n] float32, the rows quantized per row first when `bits` > 0. */
function servedGmm(
  rows: Float32Array,
  R: number,
  k: number,
  codes: Tensor,
  scales: Tensor,
  gs: Tensor,
  q: QuantizedGmmParams,
  bits: number,
): Float32Array {
  const lhs = new T(rows, [R, k], "float32");
  const out = { shape: [R, q.columns], dtype: "float32" as const };
  if (bits === 0) return quantizedGmm([lhs, codes, scales, gs], q, out) as Float32Array;
  const qp = { bits, axes: [1], flavour: "aqt" as const };
  const [v, s] = quantize(lhs, undefined, qp, [
    { shape: [R, k], dtype: "int32" },
    { shape: [R, 1], dtype: "float32" },
  ]);
  const ins = [new T(v!, [R, k], "int32"), codes, scales, gs, new T(s!, [R, 1], "float32")];
  return quantizedGmm(ins, q, out) as Float32Array;
}

export function expertFfnQuantized(ins: readonly Tensor[], p: ExpertFfnParams): Float32Array {
  const d = checkExpertFfn("expert_ffn", ins, p, 0);
  const { D, H, R } = d;
  const a = expertFfnInputs(ins, p);
  const { format, lhsBits } = p.quantized!;
  const { token, expert, rowOf } = routing(a.order, a.groupSizes, d, "expert_ffn");
  const x = a.x.data;
  const rows = new Float32Array(R * D);
  for (let r = 0; r < R; r++) if (expert[r]! >= 0) rows.set(x.subarray(token[r]! * D, (token[r]! + 1) * D), r * D);
  const up = { format, columns: H };
  const h0 = servedGmm(rows, R, D, a.wi0, a.s0!, a.groupSizes, up, lhsBits);
  const h1 = servedGmm(rows, R, D, a.wi1, a.s1!, a.groupSizes, up, lhsBits);
  const glu = gluRounded(p, Math.fround);
  const act = new Float32Array(R * H);
  for (let r = 0; r < R; r++) {
    const e = expert[r]!;
    if (e < 0) continue;
    for (let j = 0; j < H; j++) {
      let [v0, v1] = [h0[r * H + j]!, h1[r * H + j]!];
      if (p.hasBias) {
        v0 = Math.fround(v0 + a.b0!.data[e * H + j]!);
        v1 = Math.fround(v1 + a.b1!.data[e * H + j]!);
      }
      act[r * H + j] = glu(v0, v1);
    }
  }
  const o = servedGmm(act, R, H, a.wo, a.so!, a.groupSizes, { format, columns: D }, lhsBits);
  if (p.hasBias) {
    for (let r = 0; r < R; r++) {
      const e = expert[r]!;
      if (e < 0) continue;
      for (let q = 0; q < D; q++) o[r * D + q] = Math.fround(o[r * D + q]! + a.bo!.data[e * D + q]!);
    }
  }
  return combineRows(o, rowOf, p.hasCombineWeights ? a.w!.data : undefined, d);
}
