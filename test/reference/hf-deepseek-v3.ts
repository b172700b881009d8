// DeepSeek-V3's MoE (DeepseekV3MoE.route_tokens_to_experts), token by token on the HF tensors:
// s = sigmoid(gate·x); choice = s + e_score_correction_bias; group score = sum of each group's top-2 choice
// values; keep the top topk_group groups, fill the other experts' choice values with 0.0 (as transformers
// before 5 does; -inf from 5 on); top-k of that; weights = s at those experts, / (sum + 1e-20) if norm_topk_prob, × routed_scaling_factor;
// plus the shared experts' MLP.
import { axpy, linear, need, sigmoid, swiglu, topk, type HfTensors, type Vec } from "./hf-common.js";

export interface DeepseekV3Cfg {
  n_routed_experts: number;
  num_experts_per_tok: number;
  n_group: number;
  topk_group: number;
  norm_topk_prob: boolean;
  routed_scaling_factor: number;
  /** the choice value of experts outside the chosen groups: 0.0 (transformers < 5) or -Infinity (>= 5) */
  outside_groups: number;
}

export function deepseekV3Reference(cfg: DeepseekV3Cfg, t: HfTensors, prefix: string, x: Vec[]): Vec[] {
  const P = `${prefix}.mlp`;
  const E = cfg.n_routed_experts;
  const per = E / cfg.n_group;
  const bias = Array.from(need(t, `${P}.gate.e_score_correction_bias`).data);
  return x.map((xt) => {
    const s = linear(need(t, `${P}.gate.weight`), xt).map(sigmoid);
    const choice = s.map((v, e) => v + bias[e]!);
    const groupScores = Array.from({ length: cfg.n_group }, (_, g) => {
      const vals = choice.slice(g * per, (g + 1) * per).sort((a, b) => b - a);
      return vals[0]! + vals[1]!;
    });
    const keep = new Set(topk(groupScores, cfg.topk_group));
    const masked = choice.map((v, e) => (keep.has(Math.floor(e / per)) ? v : cfg.outside_groups));
    const ids = topk(masked, cfg.num_experts_per_tok);
    let w = ids.map((e) => s[e]!);
    if (cfg.norm_topk_prob) {
      const denom = w.reduce((a, b) => a + b, 0) + 1e-20;
      w = w.map((v) => v / denom);
    }
    w = w.map((v) => v * cfg.routed_scaling_factor);
    const y: Vec = new Array<number>(xt.length).fill(0);
    ids.forEach((e, j) => {
      const X = `${P}.experts.${e}`;
      axpy(y, w[j]!, swiglu(need(t, `${X}.gate_proj.weight`), need(t, `${X}.up_proj.weight`), need(t, `${X}.down_proj.weight`), xt));
    });
    axpy(
      y,
      1,
      swiglu(
        need(t, `${P}.shared_experts.gate_proj.weight`),
        need(t, `${P}.shared_experts.up_proj.weight`),
        need(t, `${P}.shared_experts.down_proj.weight`),
        xt,
      ),
    );
    return y;
  });
}
