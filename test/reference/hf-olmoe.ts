// OLMoE's sparse MoE block (OlmoeSparseMoeBlock), token by token on the HF tensors: softmax over all
// experts, top-k, renormalised only when norm_topk_prob (default false); SwiGLU experts.
import { axpy, linear, need, softmax, swiglu, topk, type HfTensors, type Vec } from "./hf-common.js";

export function olmoeReference(
  cfg: { num_experts_per_tok: number; norm_topk_prob?: boolean },
  t: HfTensors,
  prefix: string,
  x: Vec[],
): Vec[] {
  const P = `${prefix}.mlp`;
  return x.map((xt) => {
    const p = softmax(linear(need(t, `${P}.gate.weight`), xt));
    const ids = topk(p, cfg.num_experts_per_tok);
    const norm = cfg.norm_topk_prob === true ? ids.reduce((a, e) => a + p[e]!, 0) : 1;
    const y: Vec = new Array<number>(xt.length).fill(0);
    for (const e of ids) {
      const E = `${P}.experts.${e}`;
      axpy(y, p[e]! / norm, swiglu(need(t, `${E}.gate_proj.weight`), need(t, `${E}.up_proj.weight`), need(t, `${E}.down_proj.weight`), xt));
    }
    return y;
  });
}
