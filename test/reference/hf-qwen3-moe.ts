// Qwen3-MoE's sparse MoE block (Qwen3MoeSparseMoeBlock), token by token on the HF tensors:
// p = softmax(gate·x), top-k of p, renormalised if norm_topk_prob; SwiGLU experts; no shared expert.
import { axpy, linear, need, softmax, swiglu, topk, type HfTensors, type Vec } from "./hf-common.js";

export function qwen3MoeReference(
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
    return y;
  });
}
