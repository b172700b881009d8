// Legend: B batch, S sequence, T tokens (B·S), D model dim, E experts, e local experts, K experts per token,
// R routed rows (T·K).
import { ShapeError } from "../core/errors.js";
import { full, type Tensor } from "../core/tensor.js";
import { customVjp } from "../autodiff/custom-vjp.js";
import { add, cast, equal, floorDivide, mod, mul, sigmoid, where, upcastF32 } from "../ops/elementwise.js";
import { arange, argsort, bincount, repeat, take } from "../ops/indexing.js";
import { einsum } from "../ops/matmul.js";
import { flatten, reshape, sliceAxis } from "../ops/movement.js";
import { softmax } from "../ops/nn.js";
import { sum } from "../ops/reduce.js";
import type { MoeConfig } from "./config.js";
import { calculateLoadBalanceUpdates, loadBalanceLoss, shouldUpdateLoadBalance } from "./load-balance.js";
import { getTopk, type RoutingRng } from "./routing.js";

const sortCustom = customVjp(
  (x: Tensor, idx: Tensor) => ({ out: take(x, idx, 0), res: idx }),
  // the transpose of a row permutation is the inverse permutation
  (idx, ct) => [take(ct, argsort(idx), 0), undefined],
);

/**
 * _sort_activations: rows of `inputs` in the order `sortIndices` (a permutation of its rows). With
 * useCustomVjp the backward pass is a gather by the inverse permutation instead of a scatter-add.
 */
export function sortActivations(inputs: Tensor, sortIndices: Tensor, useCustomVjp: boolean): Tensor {
  if (inputs.shape[0] !== sortIndices.shape[0]) {
    throw new ShapeError(`[sort_activations] ${inputs.shape[0]} rows vs ${sortIndices.shape[0]} indices`);
  }
  return useCustomVjp ? sortCustom(inputs, sortIndices) : take(inputs, sortIndices, 0);
}

export interface PermuteOptions {
  useCustomSortVjp?: boolean;
  rng?: RoutingRng;
  /** ring of experts: expert ids are rotated by −rollToExpertId (mod E) so this shard's come first */
  rollToExpertId?: number;
}

/** Routing and sort order without moving any rows (what permute computes before its gather). */
export interface Routed {
  /** [T,D] tokens as the experts see them (llama4: scaled by sigmoid of the router score) */
  inputs_TD: Tensor;
  weights_BSK: Tensor;
  selected_BSK: Tensor;
  /** sorted row r holds routed choice order_R[r] = t·K + k */
  order_R: Tensor;
  groupSize_E: Tensor;
  /** expert id of each sorted row */
  sortedExperts_R: Tensor;
  lbLoss: Tensor | undefined;
  biasUpdates: Tensor | undefined;
}

export function route(
  cfg: MoeConfig,
  inputs_BSD: Tensor,
  gateLogits_BSE: Tensor,
  preBiasLogits_BSE: Tensor | undefined,
  opts: PermuteOptions = {},
): Routed {
  const [B, S, D] = inputs_BSD.shape as [number, number, number];
  const E = cfg.numExperts;
  let inputs_TD = reshape(inputs_BSD, [B * S, D]);
  const [weights, selected_BSK] = getTopk(cfg, gateLogits_BSE, preBiasLogits_BSE, opts.rng);
  let lbLoss: Tensor | undefined;
  if (cfg.loadBalanceLossWeight > 0) {
    const probs = cast(softmax(upcastF32(gateLogits_BSE)), cfg.dtype);
    lbLoss = loadBalanceLoss(cfg, selected_BSK, probs);
  }
  const biasUpdates = shouldUpdateLoadBalance(cfg) ? calculateLoadBalanceUpdates(selected_BSK, E, cfg.routedBiasUpdateRate) : undefined;
  if (cfg.decoderBlock === "llama4") {
    const scores_TK = reshape(sigmoid(upcastF32(weights)), [B * S, weights.shape.at(-1)!]);
    inputs_TD = mul(inputs_TD, scores_TK);
  }
  let flat_R = flatten(selected_BSK);
  if (opts.rollToExpertId !== undefined) flat_R = mod(add(flat_R, -opts.rollToExpertId), E);
  const order_R = argsort(flat_R);
  const groupSize_E = bincount(flat_R, E);
  let sortedExperts: Tensor | undefined; // made when asked: the fused expert FFN reads the group sizes instead
  return {
    inputs_TD,
    weights_BSK: weights,
    selected_BSK,
    order_R,
    groupSize_E,
    get sortedExperts_R(): Tensor {
      return (sortedExperts ??= repeat(arange(E), groupSize_E, flat_R.size));
    },
    lbLoss,
    biasUpdates,
  };
}

/** The K copies of every token in sorted order: rows of repeat(inputs, K)[order]. */
export function gatherSorted(cfg: MoeConfig, inputs_TD: Tensor, order_R: Tensor, useCustomSortVjp = cfg.useCustomSortVjp): Tensor {
  return cast(sortActivations(repeat(inputs_TD, cfg.numExpertsPerTok), order_R, useCustomSortVjp), cfg.dtype);
}

/**
 * permute: route, then sort the K copies of every token by expert. Returns the seed's tuple
 * [sortedInputs_RD, sortedSelectedExperts_R (the sort order), weights_BSK, groupSize_E,
 *  sortedExperts_R (expert id of each sorted row), lbLoss | undefined, biasUpdates | undefined, selectedExperts_BSK].
 */
export function permute(
  cfg: MoeConfig,
  inputs_BSD: Tensor,
  gateLogits_BSE: Tensor,
  preBiasLogits_BSE: Tensor | undefined,
  opts: PermuteOptions = {},
): [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | undefined, Tensor | undefined, Tensor] {
  const r = route(cfg, inputs_BSD, gateLogits_BSE, preBiasLogits_BSE, opts);
  const sorted_RD = gatherSorted(cfg, r.inputs_TD, r.order_R, opts.useCustomSortVjp ?? cfg.useCustomSortVjp);
  return [sorted_RD, r.order_R, r.weights_BSK, r.groupSize_E, r.sortedExperts_R, r.lbLoss, r.biasUpdates, r.selected_BSK];
}

/**
 * unpermute: undo the sort and combine the K expert outputs of each token with its routing weights
 * (weights of 1 for llama4; float32 sum when float32_weight_sum). Returns [B,S,D] in the layer dtype.
 */
export function unpermute(
  cfg: MoeConfig,
  intermediate_RD: Tensor,
  sortedSelectedExperts_R: Tensor,
  weights_BSK: Tensor,
  batchSize: number,
  sequenceLength: number,
  useCustomSortVjp = cfg.useCustomSortVjp,
): Tensor {
  const K = cfg.numExpertsPerTok;
  const unsorted_RD = sortActivations(intermediate_RD, argsort(sortedSelectedExperts_R), useCustomSortVjp);
  const D = intermediate_RD.shape.at(-1)!; // not inferred: an empty batch would infer 0
  let w_TK = reshape(weights_BSK, [-1, K]);
  let x_TKD = reshape(unsorted_RD, [w_TK.shape[0]!, K, D]);
  if (cfg.decoderBlock === "llama4") w_TK = full(w_TK.shape, 1, w_TK.dtype);
  if (cfg.float32WeightSum) {
    x_TKD = upcastF32(x_TKD);
    w_TK = upcastF32(w_TK);
  }
  const out_TD = einsum("TKD,TK->TD", x_TKD, w_TK);
  return cast(reshape(out_TD, [batchSize, sequenceLength, D]), cfg.dtype);
}

/**
 * local_permute (static): regroup the rows an expert shard holds by local expert id.
 * Returns [sortedInputs, sortedIndices, localGroupSize_e, sortedExpertsIds].
 */
export function localPermute(
  inputs: Tensor,
  globalGroupSizes: Tensor,
  localExpertSize: number,
  shardIndex: number,
  isOffset = false,
  globalSortedExperts?: Tensor,
  useCustomSortVjp = true,
): [Tensor, Tensor, Tensor, Tensor] {
  const [sortedIndices, localGroupSize, sortedExperts] = localPermuteOrder(
    inputs.shape[0]!,
    globalGroupSizes,
    localExpertSize,
    shardIndex,
    isOffset,
    globalSortedExperts,
  );
  return [sortActivations(inputs, sortedIndices, useCustomSortVjp), sortedIndices, localGroupSize, sortedExperts];
}

/**
 * local_permute without the sorted copy: for `rows` received rows, the order that groups them by local expert, the
 * local group sizes and each grouped row's local expert (localPermute's results but the first).
 */
export function localPermuteOrder(
  rows: number,
  globalGroupSizes: Tensor,
  localExpertSize: number,
  shardIndex: number,
  isOffset = false,
  globalSortedExperts?: Tensor,
): [Tensor, Tensor, Tensor] {
  const allShardLocal = sliceAxis(globalGroupSizes, 1, shardIndex * localExpertSize, (shardIndex + 1) * localExpertSize);
  const localSizes = flatten(allShardLocal);
  const localGroupSize = sum(allShardLocal, 0);
  let expertIndices: Tensor;
  if (isOffset) {
    if (globalSortedExperts === undefined) throw new ShapeError("[local_permute] is_offset needs global_sorted_experts");
    const owner = floorDivide(globalSortedExperts, localExpertSize);
    expertIndices = where(equal(owner, shardIndex), mod(globalSortedExperts, localExpertSize), localExpertSize);
  } else {
    const base = mod(arange(localSizes.size), localExpertSize);
    expertIndices = repeat(base, localSizes, rows);
  }
  const sortedIndices = argsort(expertIndices);
  return [sortedIndices, localGroupSize, take(expertIndices, sortedIndices, 0)];
}
