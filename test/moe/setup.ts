import type { Tensor } from "../../src/core/tensor.js";
import { moeConfig, type MoeConfig } from "../../src/moe/config.js";
import type { RoutedMoeWeights } from "../../src/moe/routed-moe.js";
import { foldIn, normal, prngKey, uniform } from "../../src/nn/random.js";
import { mul } from "../../src/ops/elementwise.js";

export interface Dims {
  B: number;
  S: number;
  D: number;
  H: number;
}

/** A float64 config (exact comparisons) from MaxText keys. */
export function cfg64(keys: Record<string, unknown>): MoeConfig {
  return moeConfig({ dtype: "float64", weight_dtype: "float64", ...keys });
}

/** Random weights for `cfg` (normal, scaled so activations stay O(1)). */
export function randomWeights(cfg: MoeConfig, d: Dims, seed = 0): RoutedMoeWeights {
  const k = prngKey(seed);
  const E = cfg.numExperts;
  const dt = cfg.weightDtype;
  const n = (i: number, shape: number[], scale: number): Tensor => mul(normal(foldIn(k, i), shape, dt), scale);
  const w: RoutedMoeWeights = {
    gateKernel: n(0, [d.D, E], 1),
    wi0: n(1, [E, d.D, d.H], 1 / Math.sqrt(d.D)),
    wi1: n(2, [E, d.D, d.H], 1 / Math.sqrt(d.D)),
    wo: n(3, [E, d.H, d.D], 1 / Math.sqrt(d.H)),
  };
  if (cfg.routedBias) w.gateBias = n(4, [E], 0.3);
  if (cfg.mlpBias) {
    w.wi0Bias = n(5, [E, d.H], 0.2);
    w.wi1Bias = n(6, [E, d.H], 0.2);
    w.woBias = n(7, [E, d.D], 0.2);
  }
  if (cfg.decoderBlock === "gemma4") w.perExpertScale = uniform(foldIn(k, 8), [E], 0.5, 1.5, dt);
  return w;
}

export function randomInput(cfg: MoeConfig, d: Dims, seed = 1): Tensor {
  return normal(foldIn(prngKey(seed), 9), [d.B, d.S, d.D], cfg.dtype);
}

/** max |a-b| / max(1, max|b|) */
export function scaledError(a: Tensor, b: Tensor): number {
  let m = 1;
  let worst = 0;
  for (let i = 0; i < b.size; i++) {
    m = Math.max(m, Math.abs(b.data[i]!));
    worst = Math.max(worst, Math.abs(a.data[i]! - b.data[i]!));
  }
  if (a.shape.join() !== b.shape.join()) return Infinity;
  return worst / m;
}

/** Routing configurations that cover every branch of get_topk and the FFN variants. */
export const ROUTING_CONFIGS: Record<string, Record<string, unknown>> = {
  mixtral_softmax: { decoder_block: "mixtral", num_experts: 6, num_experts_per_tok: 2 },
  qwen3_norm_topk: { decoder_block: "qwen3", num_experts: 6, num_experts_per_tok: 3, norm_topk_prob: true },
  sigmoid_score_bias: { decoder_block: "default", num_experts: 6, num_experts_per_tok: 2, routed_score_func: "sigmoid", routed_bias: true },
  deepseek3_groups: {
    decoder_block: "deepseek",
    model_name: "deepseek3-test",
    num_experts: 8,
    num_experts_per_tok: 3,
    routed_score_func: "sigmoid",
    routed_bias: true,
    routed_scaling_factor: 2.5,
    n_routing_groups: 4,
    topk_routing_group: 2,
  },
  deepseek2_softmax_scale: {
    decoder_block: "deepseek",
    model_name: "deepseek2-16b",
    num_experts: 6,
    num_experts_per_tok: 2,
    routed_score_func: "softmax",
    routed_scaling_factor: 1.5,
  },
  gemma4_gelu_scale: {
    decoder_block: "gemma4",
    num_experts: 6,
    num_experts_per_tok: 2,
    mlp_activations: ["gelu", "linear"],
    norm_topk_prob: true,
  },
  llama4_top1: { decoder_block: "llama4", num_experts: 4, num_experts_per_tok: 1 },
  gpt_oss_bias_clamp: {
    decoder_block: "gpt_oss",
    num_experts: 4,
    num_experts_per_tok: 2,
    mlp_activations: ["sigmoid", "linear"],
    mlp_activations_limit: 0.8,
    mlp_bias: true,
    routed_bias: true,
  },
  relu_mlp_bias: { decoder_block: "mixtral", num_experts: 4, num_experts_per_tok: 2, mlp_activations: ["relu", "linear"], mlp_bias: true },
};
