// Qwen3-Next's sparse MoE block (Qwen3NextSparseMoeBlock), token by token on the HF tensors: softmax router,
// top-k, renormalised when norm_topk_prob (default true); SwiGLU experts; shared expert gated by
// sigmoid(shared_expert_gate·x).
import { axpy, linear, need, sigmoid, softmax, swiglu, topk, type HfTensors, type Vec } from "./hf-common.js";

export function qwen3NextReference(
  cfg: { num_experts_per_tok: number; norm_topk_prob?: boolean },
  t: HfTensors,
  prefix: string,
  x: Vec[],
): Vec[] {
  const P = `${prefix}.mlp`;
  const norm = cfg.norm_topk_prob ?? true;
  return x.map((xt) => {
    const p = softmax(linear(need(t, `${P}.gate.weight`), xt));
    const ids = topk(p, cfg.num_experts_per_tok);
    const sum = norm ? ids.reduce((a, e) => a + p[e]!, 0) : 1;
    const y: Vec = new Array<number>(xt.length).fill(0);
    for (const e of ids) {
      const E = `${P}.experts.${e}`;
      axpy(y, p[e]! / sum, swiglu(need(t, `${E}.gate_proj.weight`), need(t, `${E}.up_proj.weight`), need(t, `${E}.down_proj.weight`), xt));
    }
    const g = sigmoid(linear(need(t, `${P}.shared_expert_gate.weight`), xt)[0]!);
    axpy(
      y,
      g,
      swiglu(
        need(t, `${P}.shared_expert.gate_proj.weight`),
        need(t, `${P}.shared_expert.up_proj.weight`),
        need(t, `${P}.shared_expert.down_proj.weight`),
        xt,
      ),
    );
    return y;
  });
}
