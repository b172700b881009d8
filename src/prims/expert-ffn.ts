// The fused MoE expert FFN as a primitive: MaxText's gather → expert FFN → unpermute over one sort order.
// Legend: T tokens, K experts per token, R = T·K routed rows, E experts, D model dim, H expert hidden dim.
//
//   x_rows[r] = x[order[r] div K]                        routed choice order[r] = t·K + k sits in sorted row r
//   h0[r] = x_rows[r] @ wi0[e] + b0[e],  h1[r] = x_rows[r] @ wi1[e] + b1[e]     e: the group of row r
//   act[r] = glu(h0[r], h1[r])
//   o[r] = act[r] @ wo[e] + bo[e]
//   y[t] = Σ_k w[t, k] · o[row of choice t·K + k]        w = 1 without combine weights
//
// glu: f(h0)·h1, or with clampLimit L > 0 (GPT-OSS) a = min(h0, L), b = clip(h1, −L, L), a·f(alpha·a)·(b + 1).
// Rows past sum(groupSizes) belong to no expert: h0, h1, act and o are 0 there.
// dtype is the layer's: every op's result (h0 and h1 before and after the bias, each op of the GLU, o before and
// after the bias) is rounded to it, and x, the weights and the biases are read rounded to it, as the op composition in
// that dtype computes; y is the float32 sum (cast it to the layer's dtype). bfloat16 has no backward here: a
// bfloat16 layer's gradients come from the op composition.
//
// The served variant (params.quantized): wi0, wi1 and wo are the codes of quantized storage (prims/quantized-gmm.ts's
// layouts), their scales three more inputs, and each matmul is that QuantizedGmm: x_rows @ wi0[e] reads the codes
// (weight-only), or with lhsBits > 0 the matmul's input rows (x_rows, then act) are first quantized per row (Quantize,
// AQT flavour, over the contracting axis) and multiplied as integers. Inference only.
import type { DType } from "../core/dtype.js";
import { DTypeError, ShapeError } from "../core/errors.js";
import { fmt, shapesEqual, type Aval } from "../core/shape.js";
import { tiledCodes, weightLayout, WEIGHT_FORMATS, type WeightFormat } from "./quantized-gmm.js";

/** The GLU's activation f (gelu is the tanh approximation). */
export type FfnActivation = "linear" | "silu" | "gelu" | "sigmoid" | "relu";
export const FFN_ACTIVATIONS: readonly FfnActivation[] = ["linear", "silu", "gelu", "sigmoid", "relu"];

/** The layer dtypes ExpertFfn rounds to. */
export type FfnDtype = "float32" | "bfloat16";
export const FFN_DTYPES: readonly FfnDtype[] = ["float32", "bfloat16"];

/** The served variant: expert weights held quantized. */
export interface ExpertFfnQuantized {
  format: WeightFormat;
  /** H, the expert hidden dim (packed codes do not show it) */
  hidden: number;
  /** 0: the matmuls take float rows (weight-only); 2..8: each matmul's rows quantized per row to this many bits first */
  lhsBits: number;
}

export interface ExpertFfnParams {
  /** K: routed choices per token */
  numExpertsPerTok: number;
  activation: FfnActivation;
  /** 0: act = f(h0)·h1; L > 0: the GPT-OSS clamped GLU */
  clampLimit: number;
  /** the GPT-OSS GLU's scale inside f (1.702) */
  alpha: number;
  /** false: every combine weight is 1 and there is no weights input */
  hasCombineWeights: boolean;
  hasBias: boolean;
  /** the layer's dtype: where every intermediate is rounded (see the header) */
  dtype: FfnDtype;
  /** also output the residuals a backward pass reads: act [R,H], h0 [R,H], h1 [R,H], o [R,D] */
  residuals: boolean;
  /** the served variant (absent: float weights) */
  quantized?: ExpertFfnQuantized | undefined;
}

/** Which gradients a backward computes (dx always): combine weights, wi0, wi1, wo, b0, b1, bo. */
export interface ExpertFfnGrads {
  w: boolean;
  wi0: boolean;
  wi1: boolean;
  wo: boolean;
  bias: boolean;
}

export type ExpertFfnBwdParams = Omit<ExpertFfnParams, "residuals"> & { grads: ExpertFfnGrads };

/** A gradient ExpertFfnBwd can output, named by its input. */
export type FfnGradName = "x" | "w" | "wi0" | "wi1" | "wo" | "b0" | "b1" | "bo";

/** ExpertFfnBwd's outputs in order: dx, then each requested gradient in input order. */
export function expertFfnBwdOutputs(p: ExpertFfnBwdParams): FfnGradName[] {
  const g = p.grads;
  const out: FfnGradName[] = ["x"];
  if (p.hasCombineWeights && g.w) out.push("w");
  if (g.wi0) out.push("wi0");
  if (g.wi1) out.push("wi1");
  if (g.wo) out.push("wo");
  if (p.hasBias && g.bias) out.push("b0", "b1", "bo");
  return out;
}

/** The inputs of ExpertFfn by name: [x, order, groupSizes, wi0, wi1, wo, w?, b0?, b1?, bo?, s0?, s1?, so?] (the scales
 * of the served variant's codes last). */
export interface ExpertFfnInputs<T> {
  x: T;
  order: T;
  groupSizes: T;
  wi0: T;
  wi1: T;
  wo: T;
  w: T | undefined;
  b0: T | undefined;
  b1: T | undefined;
  bo: T | undefined;
  s0?: T | undefined;
  s1?: T | undefined;
  so?: T | undefined;
}

type Layout = Pick<ExpertFfnParams, "hasCombineWeights" | "hasBias" | "quantized">;

export function expertFfnArity(p: Layout): number {
  return 6 + (p.hasCombineWeights ? 1 : 0) + (p.hasBias ? 3 : 0) + (p.quantized !== undefined ? 3 : 0);
}

export function expertFfnInputs<T>(ins: readonly T[], p: Layout): ExpertFfnInputs<T> {
  let i = 6;
  const w = p.hasCombineWeights ? ins[i++] : undefined;
  const [b0, b1, bo] = p.hasBias ? [ins[i++], ins[i++], ins[i++]] : [undefined, undefined, undefined];
  const [s0, s1, so] = p.quantized !== undefined ? [ins[i], ins[i + 1], ins[i + 2]] : [undefined, undefined, undefined];
  return { x: ins[0]!, order: ins[1]!, groupSizes: ins[2]!, wi0: ins[3]!, wi1: ins[4]!, wo: ins[5]!, w, b0, b1, bo, s0, s1, so };
}

/** The inputs as a list, in the primitive's order. */
export function expertFfnInputList<T>(a: ExpertFfnInputs<T>, p: Layout): T[] {
  const list = [a.x, a.order, a.groupSizes, a.wi0, a.wi1, a.wo];
  if (p.hasCombineWeights) list.push(a.w!);
  if (p.hasBias) list.push(a.b0!, a.b1!, a.bo!);
  if (p.quantized !== undefined) list.push(a.s0!, a.s1!, a.so!);
  return list;
}

/** The problem sizes of ExpertFfn inputs, after checking every shape and dtype. */
export interface FfnDims {
  T: number;
  D: number;
  K: number;
  E: number;
  H: number;
  R: number;
}

const isFloatType = (d: DType): boolean => d === "float32" || d === "bfloat16";

function expect(where: string, what: string, a: Aval, shape: readonly number[], ok: (d: DType) => boolean, dtypes: string): void {
  if (!shapesEqual(a.shape, shape)) throw new ShapeError(`[${where}] ${what} has shape ${fmt(a.shape)}, expected ${fmt(shape)}`);
  if (!ok(a.dtype)) throw new DTypeError(`[${where}] ${what} must be ${dtypes}, got ${a.dtype}`);
}

/** The served variant's storage: codes and scales of wi0, wi1 [E,D,H] and wo [E,H,D] in its format. */
function checkQuantized(
  where: string,
  a: ExpertFfnInputs<Aval>,
  p: ExpertFfnParams | ExpertFfnBwdParams,
  E: number,
  D: number,
  H: number,
): void {
  const q = p.quantized!;
  if (!WEIGHT_FORMATS.includes(q.format))
    throw new ShapeError(`[${where}] quantized.format ${String(q.format)} is not one of ${WEIGHT_FORMATS.join(", ")}`);
  if (!Number.isInteger(q.hidden) || q.hidden < 0)
    throw new ShapeError(`[${where}] quantized.hidden must be a non-negative integer, got ${q.hidden}`);
  if (!(q.lhsBits === 0 || (Number.isInteger(q.lhsBits) && q.lhsBits >= 2 && q.lhsBits <= 8)))
    throw new ShapeError(`[${where}] quantized.lhsBits must be 0 or an integer in [2, 8], got ${q.lhsBits}`);
  if ("grads" in p || p.residuals)
    throw new DTypeError(`[${where}] quantized (served) experts are for inference: differentiate the float layer`);
  if (q.format === "mxfp4" && (D % 32 !== 0 || H % 32 !== 0))
    throw new ShapeError(`[${where}] mxfp4 needs D and H multiples of 32, got ${D} and ${H}`);
  const tiled = tiledCodes(a.wi0); // int8 / int4 codes in tiles (prims/quantized-gmm.ts): all three alike
  const up = weightLayout(q.format, E, D, H, tiled);
  const down = weightLayout(q.format, E, H, D, tiled);
  for (const [what, t, want] of [
    ["wi0", a.wi0, up.codes],
    ["wi0 scales", a.s0!, up.scales],
    ["wi1", a.wi1, up.codes],
    ["wi1 scales", a.s1!, up.scales],
    ["wo", a.wo, down.codes],
    ["wo scales", a.so!, down.scales],
  ] as const)
    expect(where, `${q.format} ${what}`, t, want.shape, (d) => d === want.dtype, want.dtype);
}

export function checkExpertFfn(where: string, ins: readonly Aval[], p: ExpertFfnParams | ExpertFfnBwdParams, extra: number): FfnDims {
  const n = expertFfnArity(p) + extra;
  if (ins.length !== n) throw new ShapeError(`[${where}] expects ${n} inputs, got ${ins.length}`);
  const a = expertFfnInputs(ins.slice(extra), p);
  const wRank = p.quantized !== undefined && tiledCodes(a.wi0) ? 4 : 3; // codes in tiles: [E,⌈D/64⌉,⌈H/c⌉,4096]
  if (a.x.shape.length !== 2 || a.wi0.shape.length !== wRank) {
    throw new ShapeError(`[${where}] x ${fmt(a.x.shape)} must be [T,D] and wi0 ${fmt(a.wi0.shape)} [E,D,H]`);
  }
  const [T, D] = a.x.shape as [number, number];
  const E = a.wi0.shape[0]!;
  const H = p.quantized !== undefined ? p.quantized.hidden : a.wi0.shape[2]!;
  const K = p.numExpertsPerTok;
  if (!Number.isInteger(K) || K < 1) throw new ShapeError(`[${where}] numExpertsPerTok must be a positive integer, got ${K}`);
  if (!FFN_ACTIVATIONS.includes(p.activation))
    throw new ShapeError(`[${where}] activation ${p.activation} is not one of ${FFN_ACTIVATIONS.join(", ")}`);
  if (!(p.clampLimit >= 0) || !Number.isFinite(p.clampLimit))
    throw new ShapeError(`[${where}] clampLimit must be finite and >= 0, got ${p.clampLimit}`);
  if (!FFN_DTYPES.includes(p.dtype)) throw new DTypeError(`[${where}] dtype ${String(p.dtype)} is not one of ${FFN_DTYPES.join(", ")}`);
  if (p.dtype === "bfloat16" && ("grads" in p || p.residuals))
    throw new DTypeError(`[${where}] a bfloat16 layer has no fused backward (differentiate the op composition)`);
  const R = T * K;
  const f32 = (d: DType): boolean => d === "float32";
  const i32 = (d: DType): boolean => d === "int32";
  // a bfloat16 layer's tokens may come as they are (read rounded to the dtype either way)
  const xOk = (d: DType): boolean => d === "float32" || d === p.dtype;
  expect(where, "x", a.x, [T, D], xOk, p.dtype === "float32" ? "float32" : `float32 or ${p.dtype}`);
  expect(where, "order", a.order, [R], i32, "int32");
  expect(where, "groupSizes", a.groupSizes, [E], i32, "int32");
  if (p.quantized !== undefined) checkQuantized(where, a, p, E, D, H);
  else {
    const wdt = a.wi0.dtype;
    const sameW = (d: DType): boolean => d === wdt && isFloatType(d);
    expect(where, "wi0", a.wi0, [E, D, H], sameW, "float32 or bfloat16");
    expect(where, "wi1", a.wi1, [E, D, H], sameW, `${wdt} (as wi0)`);
    expect(where, "wo", a.wo, [E, H, D], sameW, `${wdt} (as wi0)`);
  }
  if (p.hasCombineWeights) expect(where, "combine weights", a.w!, [T, K], f32, "float32");
  if (p.hasBias) {
    expect(where, "b0", a.b0!, [E, H], isFloatType, "float32 or bfloat16");
    expect(where, "b1", a.b1!, [E, H], isFloatType, "float32 or bfloat16");
    expect(where, "bo", a.bo!, [E, D], isFloatType, "float32 or bfloat16");
  }
  return { T, D, K, E, H, R };
}

export function expertFfnShape(ins: readonly Aval[], p: ExpertFfnParams): Aval[] {
  const { T, D, R, H } = checkExpertFfn("expert_ffn", ins, p, 0);
  const out: Aval[] = [{ shape: [T, D], dtype: "float32" }];
  if (p.residuals) {
    for (const shape of [
      [R, H],
      [R, H],
      [R, H],
      [R, D],
    ])
      out.push({ shape, dtype: "float32" });
  }
  return out;
}

/** Inputs: [dy, ...ExpertFfn's inputs, act, h0, h1, o]; outputs: dx, then each requested gradient in input order. */
export function expertFfnBwdShape(ins: readonly Aval[], p: ExpertFfnBwdParams): Aval[] {
  const { T, D, R, H, E, K } = checkExpertFfn("expert_ffn_bwd", ins.slice(0, -4), p, 1);
  const [dy, act, h0, h1, o] = [ins[0]!, ...ins.slice(-4)] as [Aval, Aval, Aval, Aval, Aval];
  const f32 = (d: DType): boolean => d === "float32";
  expect("expert_ffn_bwd", "dy", dy, [T, D], f32, "float32");
  expect("expert_ffn_bwd", "act", act, [R, H], f32, "float32");
  expect("expert_ffn_bwd", "h0", h0, [R, H], f32, "float32");
  expect("expert_ffn_bwd", "h1", h1, [R, H], f32, "float32");
  expect("expert_ffn_bwd", "o", o, [R, D], f32, "float32");
  const shapes: Record<FfnGradName, number[]> = {
    x: [T, D],
    w: [T, K],
    wi0: [E, D, H],
    wi1: [E, D, H],
    wo: [E, H, D],
    b0: [E, H],
    b1: [E, H],
    bo: [E, D],
  };
  return expertFfnBwdOutputs(p).map((n) => ({ shape: shapes[n], dtype: "float32" }));
}
