// Expert compute: the sparse (grouped matmul) and dense (einsum) paths.
// Legend: B batch, S sequence, N context partitions, T tokens, D model dim, H expert hidden, E experts,
// K experts per token, C capacity, R routed rows.
import type { Tensor } from "../core/tensor.js";
import { isRecording } from "../autodiff/graph.js";
import { add, cast, clip, minimum, mul, sigmoid, upcastF32 } from "../ops/elementwise.js";
import { arange, argsort, take } from "../ops/indexing.js";
import { einsum } from "../ops/matmul.js";
import { pad, reshape, sliceAxis } from "../ops/movement.js";
import { expertFfn as expertFfnOp, isFfnActivation, type ExpertFfnArgs, type ExpertFfnOptions } from "../ops/expert-ffn.js";
import { getActivation, softmax } from "../ops/nn.js";
import { quantizedEinsum, quantizedGmm, type DotQuant } from "../ops/quantize.js";
import { isQuantizedWeight, quantizedWeightGmm, type QuantizedWeight } from "../ops/quantized-weight.js";
import type { Key } from "../nn/random.js";
import { full } from "../core/tensor.js";
import { clamp as clampIds } from "./ids.js";
import type { MoeConfig } from "./config.js";
import { getContextPartitionAndSubSeq, reshapeAndUpdateWeights, capacityMasks, subgroupMasks } from "./dispatch.js";
import { calculateLoadBalanceUpdates, loadBalanceLoss, shouldUpdateLoadBalance } from "./load-balance.js";
import { getTopk, type RoutingRng } from "./routing.js";
import { gatherSorted, route, sortActivations, unpermute, type Routed } from "./permute.js";
import { denseQuant, dispatchQuant, QuantSite, servedLhsBits, siteKey, sparseQuant } from "./quantization.js";
import { servedExpertEinsum } from "./served.js";

/** An expert weight: a float tensor, or quantized storage (serve mode, inference only). */
export type ExpertWeight = Tensor | QuantizedWeight;

/**
 * The routed experts' weights, MaxText names: wi_0/wi_1 [E,D,H], wo [E,H,D], biases [E,H]/[E,D]. The forward
 * takes ExpertWeights<ExpertWeight>: float tensors or quantized storage.
 */
export interface ExpertWeights<W extends ExpertWeight = Tensor> {
  wi0: W;
  wi1: W;
  wo: W;
  wi0Bias?: Tensor | undefined;
  wi1Bias?: Tensor | undefined;
  woBias?: Tensor | undefined;
}

/** What the forward takes: float or quantized expert weights. */
export type AnyExpertWeights = ExpertWeights<ExpertWeight>;

/** Whether the experts' kernels are float tensors, not served quantized storage (which the collectives do not move). */
export const hasFloatKernels = (w: AnyExpertWeights): w is ExpertWeights => [w.wi0, w.wi1, w.wo].every((t) => !isQuantizedWeight(t));

/** apply_ffn_activation: act(h0)·h1, or GPT-OSS's clamped h0·σ(1.702·h0)·(h1+1). */
export function applyFfnActivation(cfg: MoeConfig, layerW0: Tensor, layerW1: Tensor): Tensor {
  const act = getActivation(cfg.mlpActivations[0]!);
  let out: Tensor;
  if (cfg.decoderBlock === "gpt_oss") {
    const L = cfg.mlpActivationsLimit;
    const h0 = minimum(layerW0, L);
    const h1 = clip(layerW1, -L, L);
    out = mul(mul(h0, act(mul(h0, 1.702))), add(h1, 1));
  } else {
    out = mul(act(layerW0), layerW1);
  }
  return cast(out, cfg.dtype);
}

/** transform_bias: each sorted row's expert bias (ids clamped; padding rows never reach an output). */
export function transformBias(expertsIndex_R: Tensor, w0Bias_EH: Tensor, w1Bias_EH: Tensor, woBias_ED: Tensor): [Tensor, Tensor, Tensor] {
  const ids = clampIds(expertsIndex_R, w0Bias_EH.shape[0]!);
  return [take(w0Bias_EH, ids, 0), take(w1Bias_EH, ids, 0), take(woBias_ED, ids, 0)];
}

const WEIGHT_DTYPES: readonly string[] = ["float32", "bfloat16"];

/**
 * The ExpertFfn primitive's options for this config, or undefined where it does not compute what the op
 * composition computes: layer dtypes other than float32 and bfloat16, a bfloat16 layer being differentiated (the
 * primitive has no bfloat16 backward), weights of other dtypes, activations outside its GLU, and float experts the
 * config quantizes. Experts held quantized take the served variant: float32 and bfloat16 layers, inference only.
 */
function expertFfnOptions(cfg: MoeConfig, w: AnyExpertWeights, ...others: (Tensor | undefined)[]): ExpertFfnOptions | undefined {
  const dtype = cfg.dtype;
  const ws = [w.wi0, w.wi1, w.wo];
  const biases = [w.wi0Bias, w.wi1Bias, w.woBias];
  const glu = gluOptions(cfg);
  if (glu === undefined) return undefined;
  if (cfg.mlpBias && biases.some((t) => t === undefined || !WEIGHT_DTYPES.includes(t.dtype))) return undefined;
  const tracked = (ts: readonly (Tensor | undefined)[]): boolean => isRecording() && ts.some((t) => t?.node !== undefined);
  const served = ws.filter(isQuantizedWeight);
  if (served.length > 0) {
    // otherwise the composition runs (and refuses what it must: a differentiated input)
    const oneFormat = served.length === 3 && served.every((q) => q.format === served[0]!.format);
    if (!oneFormat || (dtype !== "float32" && dtype !== "bfloat16") || tracked([...biases, ...others])) return undefined;
    return { ...glu, dtype, lhsBits: servedLhsBits(cfg) };
  }
  if (sparseQuant(cfg) !== undefined) return undefined;
  const floats = ws as Tensor[];
  if (dtype !== "float32" && (dtype !== "bfloat16" || tracked([...floats, ...biases, ...others]))) return undefined;
  const dts = floats.map((t) => t.dtype);
  if (!WEIGHT_DTYPES.includes(dts[0]!) || dts.some((d) => d !== dts[0])) return undefined;
  return { ...glu, dtype };
}

/** The config's GLU as ExpertFfn computes it, or undefined for an activation outside it. */
function gluOptions(cfg: MoeConfig): Pick<ExpertFfnOptions, "numExpertsPerTok" | "activation" | "clampLimit" | "alpha"> | undefined {
  const name = cfg.mlpActivations[0] === "swish" ? "silu" : (cfg.mlpActivations[0] ?? "");
  if (!isFfnActivation(name)) return undefined;
  let clampLimit = 0;
  if (cfg.decoderBlock === "gpt_oss") {
    clampLimit = cfg.mlpActivationsLimit;
    if (!(clampLimit > 0) || !Number.isFinite(clampLimit)) return undefined;
  }
  return { numExpertsPerTok: cfg.numExpertsPerTok, activation: name, clampLimit, alpha: 1.702 };
}

function ffnArgs(
  cfg: MoeConfig,
  w: AnyExpertWeights,
  x_TD: Tensor,
  order_R: Tensor,
  groupSizes_E: Tensor,
  combine_TK: Tensor | undefined,
): ExpertFfnArgs {
  return {
    x_TD: x_TD.dtype === cfg.dtype && cfg.dtype === "bfloat16" ? x_TD : cast(x_TD, "float32"),
    order_R,
    groupSizes_E,
    wi0_EDH: w.wi0,
    wi1_EDH: w.wi1,
    wo_EHD: w.wo,
    combineWeights_TK: combine_TK === undefined ? undefined : cast(combine_TK, "float32"),
    bias: cfg.mlpBias ? { wi0_EH: w.wi0Bias!, wi1_EH: w.wi1Bias!, wo_ED: w.woBias! } : undefined,
  };
}

/**
 * The expert FFN over rows grouped by expert: gmm(x, wi_0) (+bias), gmm(x, wi_1) (+bias), activation,
 * gmm(·, wo) (+bias). `expertOfRow_R` gives each grouped row's (local) expert for the biases. Rows past the groups (a
 * ragged buffer's padding) never reach an output. With `order_R`, the grouped rows are x_RD[order_R[r]] and the
 * output comes back in x_RD's row order; where every row is in a group, the fused primitive gathers and scatters
 * inside and no sorted copy is made.
 */
export function expertFfn(
  cfg: MoeConfig,
  x_RD: Tensor,
  groupSizes_E: Tensor,
  expertOfRow_R: Tensor,
  w: AnyExpertWeights,
  order_R?: Tensor,
): Tensor {
  const opts = expertFfnOptions(cfg, w, x_RD);
  const R = x_RD.shape[0]!;
  let n = 0;
  for (const g of groupSizes_E.data) n += g;
  // each grouped row is a token routed to one expert with weight 1; the padding rows come back as zeros
  if (order_R !== undefined) {
    if (opts !== undefined && n === R) {
      return cast(expertFfnOp(ffnArgs(cfg, w, x_RD, order_R, groupSizes_E, undefined), { ...opts, numExpertsPerTok: 1 }), cfg.dtype);
    }
    const sorted = sortActivations(x_RD, order_R, cfg.useCustomSortVjp);
    return sortActivations(expertFfn(cfg, sorted, groupSizes_E, expertOfRow_R, w), argsort(order_R), cfg.useCustomSortVjp);
  }
  if (opts === undefined || n === 0 || n > R) return expertFfnComposed(cfg, x_RD, groupSizes_E, expertOfRow_R, w);
  const rows = n < R ? sliceAxis(x_RD, 0, 0, n) : x_RD;
  const out = expertFfnOp(ffnArgs(cfg, w, rows, arange(n), groupSizes_E, undefined), { ...opts, numExpertsPerTok: 1 });
  return cast(n < R ? pad(out, [0, 0], [R - n, 0]) : out, cfg.dtype);
}

/** expertFfn as the composition of ops (the ExpertFfn primitive's spec for float32 layers). */
export function expertFfnComposed(cfg: MoeConfig, x_RD: Tensor, groupSizes_E: Tensor, expertOfRow_R: Tensor, w: AnyExpertWeights): Tensor {
  const [h0, h1] = expertUp(cfg, x_RD, groupSizes_E, w);
  return expertDown(cfg, h0, h1, groupSizes_E, expertOfRow_R, w);
}

/** One expert GMM: rows of group g times weight g, float (quantized as the config says) or served from quantized storage. */
function expertGmm(cfg: MoeConfig, lhs: Tensor, wt: ExpertWeight, groupSizes_E: Tensor): Tensor {
  return isQuantizedWeight(wt)
    ? quantizedWeightGmm(lhs, wt, groupSizes_E, servedLhsBits(cfg))
    : quantizedGmm(lhs, cast(wt, cfg.dtype), groupSizes_E, sparseQuant(cfg));
}

/** The two wi GMMs of the expert FFN, before their biases: [gmm(x, wi_0), gmm(x, wi_1)]. */
export function expertUp(cfg: MoeConfig, x_RD: Tensor, groupSizes_E: Tensor, w: AnyExpertWeights): [Tensor, Tensor] {
  const x = cast(x_RD, cfg.dtype);
  return [expertGmm(cfg, x, w.wi0, groupSizes_E), expertGmm(cfg, x, w.wi1, groupSizes_E)];
}

/** The rest of the expert FFN after the wi GMMs: their biases, the activation, gmm(·, wo) and its bias. */
export function expertDown(
  cfg: MoeConfig,
  h0_RH: Tensor,
  h1_RH: Tensor,
  groupSizes_E: Tensor,
  expertOfRow_R: Tensor,
  w: AnyExpertWeights,
): Tensor {
  const dt = cfg.dtype;
  let [h0, h1] = [h0_RH, h1_RH];
  let b: [Tensor, Tensor, Tensor] | undefined;
  if (cfg.mlpBias) {
    b = transformBias(expertOfRow_R, cast(w.wi0Bias!, dt), cast(w.wi1Bias!, dt), cast(w.woBias!, dt));
    h0 = add(h0, b[0]);
    h1 = add(h1, b[1]);
  }
  const act = applyFfnActivation(cfg, h0, h1);
  let out = expertGmm(cfg, act, w.wo, groupSizes_E);
  if (b !== undefined) out = add(out, b[2]);
  return out;
}

export interface RoutingOutputs {
  topKWeights_BSK: Tensor;
  topKIndices_BSK: Tensor;
  lbLoss: Tensor | undefined;
  biasUpdates: Tensor | undefined;
  /** dense capacity paths only */
  expertCapacity?: number;
  keptMask_BSK?: Tensor;
}

export interface DenseResult extends RoutingOutputs {
  output: Tensor;
}

function upDown(
  cfg: MoeConfig,
  up: string,
  down: string,
  dispatched: Tensor,
  w: AnyExpertWeights,
  biasShape: (b: Tensor) => Tensor,
  quantKey: Key | undefined,
): Tensor {
  const f32 = (t: Tensor): Tensor => (cfg.activationsInFloat32 ? upcastF32(t) : t);
  const q = (site: QuantSite): DotQuant | undefined => denseQuant(cfg, siteKey(quantKey, site));
  const mm = (spec: string, lhs: Tensor, wt: ExpertWeight, site: QuantSite): Tensor =>
    isQuantizedWeight(wt)
      ? cast(servedExpertEinsum(spec, lhs, wt, servedLhsBits(cfg)), lhs.dtype)
      : quantizedEinsum(spec, lhs, wt, q(site));
  let h0 = mm(up, dispatched, w.wi0, QuantSite.Wi0);
  let h1 = mm(up, dispatched, w.wi1, QuantSite.Wi1);
  if (cfg.mlpBias) {
    h0 = add(h0, biasShape(w.wi0Bias!));
    h1 = add(h1, biasShape(w.wi1Bias!));
  }
  const act = applyFfnActivation(cfg, f32(h0), f32(h1));
  let o = mm(down, act, w.wo, QuantSite.Wo);
  if (cfg.mlpBias) o = add(o, biasShape(w.woBias!));
  return f32(o);
}

/**
 * dense_matmul: every expert on every token (dropless), or capacity-limited dispatch/combine einsums
 * (generate_masks in training, generate_masks_subgroup in inference).
 */
export function denseMatmul(
  cfg: MoeConfig,
  inputs_BSD: Tensor,
  gateLogits_BSE: Tensor,
  preBiasLogits_BSE: Tensor | undefined,
  w: AnyExpertWeights,
  rng?: RoutingRng,
  quantKey?: Key,
): DenseResult {
  const dt = cfg.dtype;
  const E = cfg.numExperts;
  const [topKWeights, topKIndices] = getTopk(cfg, gateLogits_BSE, preBiasLogits_BSE, rng);
  const isLlama4 = cfg.decoderBlock === "llama4";
  let inputs = inputs_BSD;
  let weights_BSE: Tensor | undefined;
  if (isLlama4) inputs = mul(inputs, cast(sigmoid(upcastF32(topKWeights)), dt));
  else weights_BSE = reshapeAndUpdateWeights(cfg, topKWeights, topKIndices);
  let lbLoss: Tensor | undefined;
  if (cfg.modelCallMode !== "inference" && cfg.loadBalanceLossWeight > 0) {
    lbLoss = loadBalanceLoss(cfg, topKIndices, cast(softmax(upcastF32(gateLogits_BSE)), dt));
  }
  const biasUpdates = shouldUpdateLoadBalance(cfg) ? calculateLoadBalanceUpdates(topKIndices, E, cfg.routedBiasUpdateRate) : undefined;
  const routing = { topKWeights_BSK: topKWeights, topKIndices_BSK: topKIndices, lbLoss, biasUpdates };
  const [B, S, D] = inputs.shape as [number, number, number];
  const c = (t: Tensor | undefined): Tensor | undefined => (t === undefined ? undefined : cast(t, dt));
  const cw = (t: ExpertWeight): ExpertWeight => (isQuantizedWeight(t) ? t : cast(t, dt));
  const ew: AnyExpertWeights = {
    wi0: cw(w.wi0),
    wi1: cw(w.wi1),
    wo: cw(w.wo),
    wi0Bias: c(w.wi0Bias),
    wi1Bias: c(w.wi1Bias),
    woBias: c(w.woBias),
  };

  if (cfg.capacityFactor > 0) {
    if (cfg.modelCallMode !== "inference") {
      const m = capacityMasks(cfg, topKIndices, weights_BSE!);
      const dispatched = quantizedEinsum(
        "BSM,BSEC->EBCM",
        inputs,
        cast(m.dispatch, dt),
        dispatchQuant(cfg, siteKey(quantKey, QuantSite.Dispatch)),
      );
      const inter = upDown(cfg, "EBCM,EMH->EBCH", "EBCH,EHM->EBCM", dispatched, ew, (b) => reshape(b, [E, 1, 1, -1]), quantKey);
      const output = quantizedEinsum("EBCM,BSEC->BSM", inter, m.combine, dispatchQuant(cfg, siteKey(quantKey, QuantSite.Combine)));
      return { output, ...routing, expertCapacity: m.capacity, keptMask_BSK: m.kept };
    }
    const probs = cast(softmax(upcastF32(gateLogits_BSE)), dt);
    const m = subgroupMasks(cfg, topKIndices, probs);
    const [cp, sub] = getContextPartitionAndSubSeq(cfg, S);
    const x_BNSM = reshape(inputs, [B, cp, sub, D]);
    const dispatched = einsum("BNSM,BNSEC->EBNCM", x_BNSM, cast(m.dispatch, dt));
    const inter = upDown(cfg, "EBNCM,EMH->EBNCH", "EBNCH,EHM->EBNCM", dispatched, ew, (b) => reshape(b, [E, 1, 1, -1]), quantKey);
    const out_BNSM = einsum("EBNCM,BNSEC->BNSM", inter, m.combine);
    return { output: reshape(out_BNSM, [B, cp * sub, D]), ...routing, expertCapacity: m.capacity, keptMask_BSK: m.kept };
  }

  const inter_BSED = upDown(cfg, "BSM,EMH->BSEH", "BSEH,EHM->BSEM", inputs, ew, (b) => b, quantKey);
  let cwts = isLlama4 ? reshapeAndUpdateWeights(cfg, full(topKWeights.shape, 1, dt), topKIndices) : weights_BSE!;
  let x = inter_BSED;
  if (cfg.float32WeightSum) {
    x = upcastF32(x);
    cwts = upcastF32(cwts);
  }
  return { output: cast(einsum("BSEM,BSE->BSM", x, cwts), dt), ...routing };
}

export interface SparseResult extends RoutingOutputs {
  output: Tensor;
  groupSizes_E: Tensor;
}

/**
 * The routed rows' FFN plus the weighted combine, tokens to tokens: gatherSorted → expertFfn → unpermute, one
 * ExpertFfn primitive where it applies.
 */
export function sparseExpertCombine(cfg: MoeConfig, r: Routed, w: AnyExpertWeights, batchSize: number, sequenceLength: number): Tensor {
  const opts = expertFfnOptions(cfg, w, r.inputs_TD, r.weights_BSK);
  if (opts === undefined) return sparseExpertCombineComposed(cfg, r, w, batchSize, sequenceLength);
  const combine_TK = cfg.decoderBlock === "llama4" ? undefined : reshape(r.weights_BSK, [-1, cfg.numExpertsPerTok]);
  const y_TD = expertFfnOp(ffnArgs(cfg, w, r.inputs_TD, r.order_R, r.groupSize_E, combine_TK), opts);
  return cast(reshape(y_TD, [batchSize, sequenceLength, y_TD.shape[1]!]), cfg.dtype);
}

/** sparseExpertCombine as the composition of ops. */
export function sparseExpertCombineComposed(
  cfg: MoeConfig,
  r: Routed,
  w: AnyExpertWeights,
  batchSize: number,
  sequenceLength: number,
): Tensor {
  const x_RD = gatherSorted(cfg, r.inputs_TD, r.order_R);
  const out_RD = expertFfnComposed(cfg, x_RD, r.groupSize_E, r.sortedExperts_R, w);
  return unpermute(cfg, out_RD, r.order_R, r.weights_BSK, batchSize, sequenceLength);
}

/** sparse_matmul on one device: route, grouped-matmul FFN over the sorted rows, combine (dropless). */
export function sparseMatmul(
  cfg: MoeConfig,
  inputs_BSD: Tensor,
  gateLogits_BSE: Tensor,
  preBiasLogits_BSE: Tensor | undefined,
  w: AnyExpertWeights,
  rng?: RoutingRng,
): SparseResult {
  const [B, S] = inputs_BSD.shape as [number, number];
  const r = route(cfg, inputs_BSD, gateLogits_BSE, preBiasLogits_BSE, { rng });
  return sparseResult(r, sparseExpertCombine(cfg, r, w, B, S));
}

/** The sparse path's result: the combined output and what routing decided. */
export function sparseResult(r: Routed, output: Tensor): SparseResult {
  return {
    output,
    topKWeights_BSK: r.weights_BSK,
    topKIndices_BSK: r.selected_BSK,
    lbLoss: r.lbLoss,
    biasUpdates: r.biasUpdates,
    groupSizes_E: r.groupSize_E,
  };
}
