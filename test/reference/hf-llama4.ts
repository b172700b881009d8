// Llama 4's text MoE (Llama4TextMoe), token by token on the HF tensors: logits = router·x; top-1 expert;
// its input is x · sigmoid(logit) (the other experts see 0 and contribute exactly 0); expert:
// gu = x' @ gate_up_proj[e] ([E, D, 2H], gate = first H columns, up = last H); h = silu(gate) · up;
// out = h @ down_proj[e] ([E, H, D]); plus the shared expert's SwiGLU MLP on the unscaled x.
import { axpy, linear, matvecInOut, need, sigmoid, silu, swiglu, topk, type HfTensors, type Vec } from "./hf-common.js";

export function llama4Reference(
  cfg: { num_experts_per_tok: number; hidden_size: number; intermediate_size: number },
  t: HfTensors,
  prefix: string,
  x: Vec[],
): Vec[] {
  const P = `${prefix}.feed_forward`;
  const D = cfg.hidden_size;
  const H = cfg.intermediate_size;
  const gateUp = need(t, `${P}.experts.gate_up_proj`);
  const down = need(t, `${P}.experts.down_proj`);
  return x.map((xt) => {
    const logits = linear(need(t, `${P}.router.weight`), xt);
    const y: Vec = new Array<number>(D).fill(0);
    for (const e of topk(logits, cfg.num_experts_per_tok)) {
      const s = sigmoid(logits[e]!);
      const xin = xt.map((v) => v * s);
      const gu = matvecInOut(gateUp, xin, e * D * 2 * H, D, 2 * H);
      const h = Array.from({ length: H }, (_, i) => silu(gu[i]!) * gu[H + i]!);
      axpy(y, 1, matvecInOut(down, h, e * H * D, H, D));
    }
    axpy(
      y,
      1,
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
