// Mixtral's sparse MoE block (MixtralSparseMoeBlock), token by token on the HF tensors:
// p = softmax(gate·x) over all experts, top-k of p, renormalised; out = Σ w · w2(silu(w1 x) ⊙ w3 x).
import { axpy, linear, need, softmax, swiglu, topk, type HfTensors, type Vec } from "./hf-common.js";

export function mixtralReference(
  cfg: { num_local_experts: number; num_experts_per_tok: number },
  t: HfTensors,
  prefix: string,
  x: Vec[],
): Vec[] {
  const P = `${prefix}.block_sparse_moe`;
  return x.map((xt) => {
    const p = softmax(linear(need(t, `${P}.gate.weight`), xt));
    const ids = topk(p, cfg.num_experts_per_tok);
    const sum = ids.reduce((a, e) => a + p[e]!, 0);
    const y: Vec = new Array<number>(xt.length).fill(0);
    for (const e of ids) {
      const E = `${P}.experts.${e}`;
      axpy(y, p[e]! / sum, swiglu(need(t, `${E}.w1.weight`), need(t, `${E}.w3.weight`), need(t, `${E}.w2.weight`), xt));
    }
    return y;
  });
}
