// Legend: B batch, S sequence, E experts, K experts per token.
import type { Tensor } from "../core/tensor.js";
import { cast, mul, sign, sub } from "../ops/elementwise.js";
import { bincount, oneHot } from "../ops/indexing.js";
import { mean, sum } from "../ops/reduce.js";
import type { MoeConfig } from "./config.js";

/**
 * load_balance_loss (Switch Transformer): mean_{b,e}(density · density_prob) · E² · weight, where
 * density = fraction of the K choices per token hitting e (mean over S), density_prob = mean_S probs.
 * Arguments: topKIndices_BSK int32, probs_BSE (softmax of the gate logits).
 */
export function loadBalanceLoss(cfg: MoeConfig, topKIndices_BSK: Tensor, probs_BSE: Tensor): Tensor {
  const E = cfg.numExperts;
  const counts_BSE = sum(oneHot(topKIndices_BSK, E, "int32"), 2);
  const density_BE = mean(cast(counts_BSE, probs_BSE.dtype), 1);
  const densityProb_BE = mean(probs_BSE, 1);
  return mul(mean(mul(density_BE, densityProb_BE)), E * E * cfg.loadBalanceLossWeight);
}

/** calculate_load_balance_updates: rate · sign(T·K/E − count_e), float32 [E]. */
export function calculateLoadBalanceUpdates(topKIndices: Tensor, numExperts: number, rate: number): Tensor {
  // tensor ops, not a read of the counts in JavaScript: a jit replay recomputes it (serving DeepSeek-V3 under jit)
  const counts = cast(bincount(topKIndices, numExperts), "float64");
  return cast(mul(sign(sub(topKIndices.size / numExperts, counts)), rate), "float32");
}

/** should_update_load_balance: loss-free bias updates are on when routed_bias and a positive rate. */
export function shouldUpdateLoadBalance(cfg: MoeConfig): boolean {
  return cfg.routedBias && cfg.routedBiasUpdateRate > 0;
}
