// ExpertFfn and ExpertFfnBwd on the fused native kernels (moe_ffn_fwd_* / moe_ffn_bwd_*). bfloat16 weights go to
// the kernels as their bit patterns, never widened in TypeScript; with them the dpbf16 / amx paths round the
// activations to bf16 (native/include/moe-kernels.h), so results match the reference to bf16 precision. A bfloat16
// layer (moe_ffn_fwd_bf16*) takes float32 weights as they are: the kernels round each as they read it.
import type { TypedArray } from "../../core/dtype.js";
import { storagePool } from "../../core/pool.js";
import type { Aval } from "../../core/shape.js";
import type { Tensor } from "../../core/tensor.js";
import {
  expertFfnBwdOutputs,
  expertFfnInputs,
  FFN_ACTIVATIONS,
  type ExpertFfnBwdParams,
  type ExpertFfnInputs,
  type ExpertFfnParams,
  type FfnGradName,
} from "../../prims/expert-ffn.js";
import type { NativeBinding, NativeFfnProblem, NativeWeights } from "./binding.js";
import { byteBacked, MAX_I8_K, nativeWeightFormat } from "./simple-kernels.js";

/** moe_activation_t by activation name. */
const ACTIVATION_CODE: Readonly<Record<string, number>> = { linear: 0, silu: 1, gelu: 2, sigmoid: 3, relu: 4 };
/** The one GLU scale the kernels implement for the clamped form. */
const KERNEL_ALPHA = 1.702;

const f32Backed = (t: Tensor | undefined): boolean => t !== undefined && t.data instanceof Float32Array;

/** Whether the backward kernel takes these inputs: as the forward, with float32 cotangent and residuals. */
export function supportsExpertFfnBwd(ins: readonly Tensor[], p: ExpertFfnBwdParams): boolean {
  return f32Backed(ins[0]) && ins.slice(-4).every(f32Backed) && supportsExpertFfn(ins.slice(1, -4), p);
}

/**
 * The served variant's storage as moe_ffn_fwd_quantized reads it. A bfloat16 layer only with int8 / int4 codes: its
 * weight-only products are QuantizedGmm's in bf16, which rounds each scale block's partial sum and its scale to bf16
 * (prims/quantized-gmm.ts); the kernel does so for the one block of int codes, not for fp8 / mxfp4's many.
 */
function quantizedStorageOk(a: ExpertFfnInputs<Tensor>, p: ExpertFfnParams | ExpertFfnBwdParams): boolean {
  const q = p.quantized!;
  if (p.dtype === "bfloat16" && q.format !== "int8" && q.format !== "int4") return false;
  const scalesOk = (t: Tensor | undefined): boolean => (q.format === "mxfp4" ? byteBacked(t) : f32Backed(t));
  const D = a.x.shape[1]!;
  return [a.wi0, a.wi1, a.wo].every(byteBacked) && [a.s0, a.s1, a.so].every(scalesOk) && D <= MAX_I8_K && q.hidden <= MAX_I8_K;
}

/** Whether the kernels take these inputs: every routed row in a group, float storage they can read, their GLUs. */
export function supportsExpertFfn(ins: readonly Tensor[], p: ExpertFfnParams | ExpertFfnBwdParams): boolean {
  if (!FFN_ACTIVATIONS.includes(p.activation) || (p.clampLimit !== 0 && Math.fround(p.alpha) !== Math.fround(KERNEL_ALPHA))) return false;
  const a = expertFfnInputs(ins, p);
  if (a.x === undefined || !f32Backed(a.x) || a.wi0 === undefined) return false;
  if (p.quantized !== undefined) {
    if (!quantizedStorageOk(a, p)) return false;
  } else {
    const bf16 = a.wi0.dtype === "bfloat16";
    const weightOk = (t: Tensor | undefined): boolean => t !== undefined && t.dtype === a.wi0.dtype && (bf16 || f32Backed(t));
    if (!weightOk(a.wi0) || !weightOk(a.wi1) || !weightOk(a.wo)) return false;
  }
  if (p.hasCombineWeights && !f32Backed(a.w)) return false;
  if (p.hasBias && ![a.b0, a.b1, a.bo].every(f32Backed)) return false;
  if (!(a.groupSizes?.data instanceof Int32Array) || !(a.order?.data instanceof Int32Array)) return false;
  let rows = 0;
  for (const g of a.groupSizes.data) rows += g;
  return rows === a.order.size;
}

function weights(b: NativeBinding, t: Tensor): NativeWeights {
  return t.dtype === "bfloat16" ? t.bf16BitsOf((v, bits) => b.f32ToBf16Bits(v, bits)) : (t.data as Float32Array);
}

function problem(b: NativeBinding, ins: readonly Tensor[], p: ExpertFfnParams | ExpertFfnBwdParams): NativeFfnProblem {
  const a = expertFfnInputs(ins, p);
  const [T, D] = a.x.shape as [number, number];
  const [E, , H] = a.wi0.shape as [number, number, number];
  return {
    x: a.x.data as Float32Array,
    T,
    D,
    order: a.order.data as Int32Array,
    K: p.numExpertsPerTok,
    w: p.hasCombineWeights ? (a.w!.data as Float32Array) : null,
    wi0: weights(b, a.wi0),
    wi1: weights(b, a.wi1),
    wo: weights(b, a.wo),
    groupSizes: a.groupSizes.data as Int32Array,
    E,
    H,
    activation: ACTIVATION_CODE[p.activation]!,
    clampLimit: p.clampLimit,
  };
}

// bf16 biases are Float32Arrays of bf16 values: exact as fp32
const bias = (t: Tensor | undefined): Float32Array | null => (t === undefined ? null : (t.data as Float32Array));

/** The served variant (moe_ffn_fwd_quantized): y only. */
function expertFfnQuantizedNative(b: NativeBinding, ins: readonly Tensor[], p: ExpertFfnParams, outs: readonly Aval[]): TypedArray[] {
  const a = expertFfnInputs(ins, p);
  const [T, D] = a.x.shape as [number, number];
  const y = storagePool.take(outs[0]!.shape[0]! * outs[0]!.shape[1]!);
  const codes = (t: Tensor): Int8Array | Uint8Array => t.data as Int8Array | Uint8Array;
  const scales = (t: Tensor | undefined): Float32Array | Uint8Array => t!.data as Float32Array | Uint8Array;
  b.ffnFwdQuantized({
    format: nativeWeightFormat(p.quantized!.format, a.wi0),
    lhsBits: p.quantized!.lhsBits,
    x: a.x.data as Float32Array,
    T,
    D,
    order: a.order.data as Int32Array,
    K: p.numExpertsPerTok,
    w: p.hasCombineWeights ? (a.w!.data as Float32Array) : null,
    wi0Codes: codes(a.wi0),
    wi0Scales: scales(a.s0),
    wi1Codes: codes(a.wi1),
    wi1Scales: scales(a.s1),
    woCodes: codes(a.wo),
    woScales: scales(a.so),
    b0: bias(a.b0),
    b1: bias(a.b1),
    bo: bias(a.bo),
    groupSizes: a.groupSizes.data as Int32Array,
    E: a.groupSizes.size,
    H: p.quantized!.hidden,
    activation: ACTIVATION_CODE[p.activation]!,
    clampLimit: p.clampLimit,
    y,
    bf16Layer: p.dtype === "bfloat16",
  });
  return [y];
}

export function expertFfnNative(b: NativeBinding, ins: readonly Tensor[], p: ExpertFfnParams, outs: readonly Aval[]): TypedArray[] {
  if (p.quantized !== undefined) return expertFfnQuantizedNative(b, ins, p, outs);
  const a = expertFfnInputs(ins, p);
  // y and the residuals come from the recycled-storage pool: the kernels write every element
  const y = storagePool.take(outs[0]!.shape[0]! * outs[0]!.shape[1]!);
  const res = p.residuals ? outs.slice(1).map((o) => storagePool.take(o.shape[0]! * o.shape[1]!)) : [null, null, null, null];
  b.ffnFwd({
    ...problem(b, ins, p),
    b0: bias(a.b0),
    b1: bias(a.b1),
    bo: bias(a.bo),
    y,
    resAct: res[0]!,
    resH0: res[1]!,
    resH1: res[2]!,
    resO: res[3]!,
    bf16Layer: p.dtype === "bfloat16",
  });
  return p.residuals ? [y, ...(res as Float32Array[])] : [y];
}

export function expertFfnBwdNative(b: NativeBinding, ins: readonly Tensor[], p: ExpertFfnBwdParams, outs: readonly Aval[]): TypedArray[] {
  const [dy, act, h0, h1, o] = [ins[0]!, ...ins.slice(-4)].map((t) => t.data as Float32Array) as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
  const fwdIns = ins.slice(1, -4);
  // the outputs in the shape rule's order, each from the pool (the kernels write every element)
  const grads = outs.map((o) => storagePool.take(o.shape.reduce((x, y) => x * y, 1)));
  const named = new Map(expertFfnBwdOutputs(p).map((n, i) => [n, grads[i]!]));
  // a gradient not asked for is null: the kernels skip its products
  const d = (n: FfnGradName): Float32Array | null => named.get(n) ?? null;
  b.ffnBwd({
    ...problem(b, fwdIns, p),
    dy,
    resAct: act,
    resH0: h0,
    resH1: h1,
    resO: o,
    dx: grads[0]!,
    dw: d("w"),
    dwi0: d("wi0"),
    dwi1: d("wi1"),
    dwo: d("wo"),
    db0: d("b0"),
    db1: d("b1"),
    dbo: d("bo"),
  });
  return grads;
}
