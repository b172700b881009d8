// Legend: B batch, S sequence, E experts, K experts per token, G routing groups.
import { ConfigError } from "../core/errors.js";
import type { Tensor } from "../core/tensor.js";
import { cast, div, greater, mul, where, upcastF32 } from "../ops/elementwise.js";
import { oneHot, takeAlongAxis, topK } from "../ops/indexing.js";
import { broadcastTo, expandDims, reshape } from "../ops/movement.js";
import { softmax } from "../ops/nn.js";
import { sum } from "../ops/reduce.js";
import { randint, type Key } from "../nn/random.js";
import { groupRouting, type MoeConfig } from "./config.js";

/** A PRNG key for random routing, or the draw itself (top-k ids [B,S,K]) to inject. */
export type RoutingRng = Key | { topKIndices: Tensor };

/**
 * random_routing: uniform random expert ids (repeats possible); weights are the raw gate values at
 * those ids. Returns [weights_BSK, indices_BSK].
 */
export function randomRouting(rng: RoutingRng, gateLogits_BSE: Tensor, numExpertsPerTok: number): [Tensor, Tensor] {
  const [b, s, e] = gateLogits_BSE.shape as [number, number, number];
  const idx = "topKIndices" in rng ? rng.topKIndices : randint(rng, [b, s, numExpertsPerTok], 0, e);
  if (idx.dtype !== "int32" || idx.shape.join() !== [b, s, numExpertsPerTok].join()) {
    throw new ConfigError("random_top_k_indices", idx.shape, `must be int32 [${b},${s},${numExpertsPerTok}]`);
  }
  return [takeAlongAxis(gateLogits_BSE, idx), idx];
}

/**
 * deepseek_scale_weights: renormalise sigmoid scores (unless renormalize_sigmoid_scores is false, our extension),
 * then multiply by routed_scaling_factor.
 */
export function deepseekScaleWeights(cfg: MoeConfig, weights_BSK: Tensor): Tensor {
  let w = weights_BSK;
  if (cfg.routedScoreFunc === "sigmoid" && cfg.renormalizeSigmoidScores) w = div(w, sum(w, -1, true));
  return mul(w, cfg.routedScalingFactor);
}

/**
 * expert_group_mask: 1 for experts in the top topk_routing_group groups. A group's score is the sum of its top-2
 * (MaxText), or its maximum (routing_group_score "max", DeepSeek-V2's group_limited_greedy).
 */
export function expertGroupMask(cfg: MoeConfig, gateLogits_BSE: Tensor): Tensor {
  const G = cfg.nRoutingGroups;
  const E = cfg.numExperts;
  const lead = gateLogits_BSE.shape.slice(0, -1);
  const grouped = reshape(gateLogits_BSE, [...lead, G, E / G]);
  const [top] = topK(grouped, cfg.routingGroupScore === "max" ? 1 : 2);
  const groupScores = sum(upcastF32(top), -1);
  const [, groupIdx] = topK(groupScores, cfg.topkRoutingGroup);
  const groupMask = sum(oneHot(groupIdx, G, "float32"), -2);
  return reshape(broadcastTo(expandDims(groupMask, -1), [...lead, G, E / G]), [...lead, E]);
}

/** deepseek_routing: select on the (biased) logits within the top groups; weights from pre-bias scores. */
export function deepseekRouting(cfg: MoeConfig, gateLogits_BSE: Tensor, preBiasLogits_BSE: Tensor | undefined): [Tensor, Tensor] {
  let scores = gateLogits_BSE;
  if (cfg.nRoutingGroups !== -1) scores = where(greater(expertGroupMask(cfg, gateLogits_BSE), 0), gateLogits_BSE, -Infinity);
  const [, idx] = topK(scores, cfg.numExpertsPerTok);
  return [takeAlongAxis(preBiasLogits_BSE ?? gateLogits_BSE, idx), idx];
}

/** get_topk: the routing branches of the seed, in its order. Returns [weights_BSK, indices_BSK]. */
export function getTopk(cfg: MoeConfig, gateLogits_BSE: Tensor, preBiasLogits_BSE: Tensor | undefined, rng?: RoutingRng): [Tensor, Tensor] {
  const K = cfg.numExpertsPerTok;
  if (cfg.useRandomRouting) {
    if (rng === undefined) throw new ConfigError("use_random_routing", true, "random routing needs a PRNG key (rng)");
    return randomRouting(rng, gateLogits_BSE, K);
  }
  let weights: Tensor;
  let indices: Tensor;
  if (groupRouting(cfg)) {
    [weights, indices] = deepseekRouting(cfg, gateLogits_BSE, preBiasLogits_BSE);
  } else if (cfg.decoderBlock === "gemma4") {
    const probs = softmax(upcastF32(gateLogits_BSE));
    [, indices] = topK(gateLogits_BSE, K);
    weights = cast(takeAlongAxis(probs, indices), cfg.dtype);
  } else {
    [weights, indices] = topK(gateLogits_BSE, K);
  }
  if (cfg.decoderBlock === "deepseek") {
    weights = deepseekScaleWeights(cfg, weights);
  } else if (cfg.decoderBlock !== "llama4" && cfg.decoderBlock !== "gemma4") {
    weights = cast(softmax(upcastF32(weights)), cfg.dtype);
  }
  if (cfg.normTopkProb) weights = div(weights, sum(weights, -1, true));
  return [weights, indices];
}
