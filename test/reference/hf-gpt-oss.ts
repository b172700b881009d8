// GPT-OSS's MLP (GptOssMLP: GptOssTopKRouter + GptOssExperts), token by token on the HF tensors:
// logits = router.weight·x + router.bias; top-k of the logits; weights = softmax over those k values.
// Expert e: gu = x @ gate_up_proj[e] + gate_up_proj_bias[e] ([E, D, 2H], gate = even columns, up = odd);
// gate = min(gate, 7), up = clamp(up, -7, 7); o = (up + 1) · gate · sigmoid(1.702 · gate);
// out = o @ down_proj[e] + down_proj_bias[e] ([E, H, D]).
import { axpy, linear, matvecInOut, need, row, sigmoid, softmax, topk, type HfTensors, type Vec } from "./hf-common.js";

export function gptOssReference(
  cfg: { num_experts_per_tok: number; hidden_size: number; intermediate_size: number },
  t: HfTensors,
  prefix: string,
  x: Vec[],
): Vec[] {
  const P = `${prefix}.mlp`;
  const D = cfg.hidden_size;
  const H = cfg.intermediate_size;
  const limit = 7.0;
  const alpha = 1.702;
  const gateUp = need(t, `${P}.experts.gate_up_proj`);
  const gateUpBias = need(t, `${P}.experts.gate_up_proj_bias`);
  const down = need(t, `${P}.experts.down_proj`);
  const downBias = need(t, `${P}.experts.down_proj_bias`);
  return x.map((xt) => {
    const logits = linear(need(t, `${P}.router.weight`), xt, 0, undefined, Array.from(need(t, `${P}.router.bias`).data));
    const ids = topk(logits, cfg.num_experts_per_tok);
    const w = softmax(ids.map((e) => logits[e]!));
    const y: Vec = new Array<number>(D).fill(0);
    ids.forEach((e, j) => {
      const gu = matvecInOut(gateUp, xt, e * D * 2 * H, D, 2 * H);
      const b = row(gateUpBias, e);
      const o: Vec = [];
      for (let h = 0; h < H; h++) {
        const gate = Math.min(gu[2 * h]! + b[2 * h]!, limit);
        const up = Math.min(Math.max(gu[2 * h + 1]! + b[2 * h + 1]!, -limit), limit);
        o.push((up + 1) * gate * sigmoid(gate * alpha));
      }
      const out = matvecInOut(down, o, e * H * D, H, D);
      const db = row(downBias, e);
      axpy(
        y,
        w[j]!,
        out.map((v, d) => v + db[d]!),
      );
    });
    return y;
  });
}
