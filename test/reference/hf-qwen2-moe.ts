// Qwen2-MoE's sparse MoE block (Qwen2MoeSparseMoeBlock), token by token on the HF tensors:
// p = softmax(gate·x), top-k of p (renormalised only if norm_topk_prob), SwiGLU experts, plus the shared
// expert scaled by sigmoid(shared_expert_gate·x).
import { axpy, linear, need, sigmoid, softmax, swiglu, topk, type HfTensors, type Vec } from "./hf-common.js";

export function qwen2MoeReference(
  cfg: { num_experts_per_tok: number; norm_topk_prob?: boolean },
  t: HfTensors,
  prefix: string,
  x: Vec[],
): Vec[] {
  const P = `${prefix}.mlp`;
  return x.map((xt) => {
    const p = softmax(linear(need(t, `${P}.gate.weight`), xt));
    const ids = topk(p, cfg.num_experts_per_tok);
    const sum = cfg.norm_topk_prob === true ? ids.reduce((a, e) => a + p[e]!, 0) : 1;
    const y: Vec = new Array<number>(xt.length).fill(0);
    for (const e of ids) {
      const E = `${P}.experts.${e}`;
      axpy(y, p[e]! / sum, swiglu(need(t, `${E}.gate_proj.weight`), need(t, `${E}.up_proj.weight`), need(t, `${E}.down_proj.weight`), xt));
    }
    const shared = swiglu(
      need(t, `${P}.shared_expert.gate_proj.weight`),
      need(t, `${P}.shared_expert.up_proj.weight`),
      need(t, `${P}.shared_expert.down_proj.weight`),
      xt,
    );
    const g = sigmoid(linear(need(t, `${P}.shared_expert_gate.weight`), xt)[0]!);
    axpy(y, g, shared);
    return y;
  });
}
