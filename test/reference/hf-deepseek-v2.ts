// DeepSeek-V2's MoE (DeepseekV2Moe), token by token on the HF tensors: softmax scores over all experts,
// greedy top-k of the scores (group_limited_greedy: a group scores its maximum probability, the top topk_group
// groups are kept and the other experts' scores filled with 0.0 first), weights = scores × routed_scaling_factor
// (no renormalisation), SwiGLU experts, plus the shared experts' MLP (width n_shared_experts ×
// moe_intermediate_size) unscaled.
import { axpy, linear, need, softmax, swiglu, topk, type HfTensors, type Vec } from "./hf-common.js";

export function deepseekV2Reference(
  cfg: { num_experts_per_tok: number; routed_scaling_factor: number; n_group?: number; topk_group?: number },
  t: HfTensors,
  prefix: string,
  x: Vec[],
): Vec[] {
  const P = `${prefix}.mlp`;
  return x.map((xt) => {
    const p = softmax(linear(need(t, `${P}.gate.weight`), xt));
    let choice = p;
    if (cfg.n_group !== undefined && cfg.topk_group !== undefined) {
      const per = p.length / cfg.n_group;
      const groupScores = Array.from({ length: cfg.n_group }, (_, g) => Math.max(...p.slice(g * per, (g + 1) * per)));
      const keep = new Set(topk(groupScores, cfg.topk_group));
      choice = p.map((v, e) => (keep.has(Math.floor(e / per)) ? v : 0.0));
    }
    const ids = topk(choice, cfg.num_experts_per_tok);
    const y: Vec = new Array<number>(xt.length).fill(0);
    for (const e of ids) {
      const E = `${P}.experts.${e}`;
      axpy(
        y,
        p[e]! * cfg.routed_scaling_factor,
        swiglu(need(t, `${E}.gate_proj.weight`), need(t, `${E}.up_proj.weight`), need(t, `${E}.down_proj.weight`), xt),
      );
    }
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
