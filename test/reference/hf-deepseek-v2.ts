// DeepSeek-V2's MoE (DeepseekV2Moe), token by token on the HF tensors: softmax scores over all experts,
// greedy top-k of the scores, weights = scores × routed_scaling_factor (no renormalisation), SwiGLU
// experts, plus the shared experts' MLP (width n_shared_experts × moe_intermediate_size) unscaled.
import { axpy, linear, need, softmax, swiglu, topk, type HfTensors, type Vec } from "./hf-common.js";

export function deepseekV2Reference(
  cfg: { num_experts_per_tok: number; routed_scaling_factor: number },
  t: HfTensors,
  prefix: string,
  x: Vec[],
): Vec[] {
  const P = `${prefix}.mlp`;
  return x.map((xt) => {
    const p = softmax(linear(need(t, `${P}.gate.weight`), xt));
    const ids = topk(p, cfg.num_experts_per_tok);
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
