// Granite-MoE's MoE (GraniteMoeMoE with GraniteMoeTopKGating / GraniteMoeParallelExperts), token by token on
// the HF tensors: logits = router.layer·x; top-k of the logits; gates = softmax over those k; expert e:
// h = input_linear[e] x ([E, 2H, D]); h = silu(h[:H]) · h[H:]; out = output_linear[e] h ([E, D, H]).
// Granite-MoE-Shared adds shared_mlp: input_linear [2Hs, D] (chunked the same way), output_linear [D, Hs].
import { axpy, linear, need, silu, softmax, topk, type HfTensors, type Vec } from "./hf-common.js";

export function graniteMoeReference(
  cfg: { num_experts_per_tok: number; intermediate_size: number; shared_intermediate_size?: number },
  t: HfTensors,
  prefix: string,
  x: Vec[],
): Vec[] {
  const P = `${prefix}.block_sparse_moe`;
  const H = cfg.intermediate_size;
  const inp = need(t, `${P}.input_linear.weight`);
  const outp = need(t, `${P}.output_linear.weight`);
  const D = inp.shape[2]!;
  return x.map((xt) => {
    const logits = linear(need(t, `${P}.router.layer.weight`), xt);
    const ids = topk(logits, cfg.num_experts_per_tok);
    const gates = softmax(ids.map((e) => logits[e]!));
    const y: Vec = new Array<number>(D).fill(0);
    ids.forEach((e, j) => {
      const h = linear(inp, xt, e * 2 * H * D, 2 * H);
      const a = Array.from({ length: H }, (_, i) => silu(h[i]!) * h[H + i]!);
      axpy(y, gates[j]!, linear(outp, a, e * D * H, D));
    });
    const Hs = cfg.shared_intermediate_size ?? 0;
    if (Hs > 0) {
      const h = linear(need(t, `${prefix}.shared_mlp.input_linear.weight`), xt);
      const a = Array.from({ length: Hs }, (_, i) => silu(h[i]!) * h[Hs + i]!);
      axpy(y, 1, linear(need(t, `${prefix}.shared_mlp.output_linear.weight`), a));
    }
    return y;
  });
}
