// Legend: B batch, S sequence, D model dim (emb), E experts.
import type { Tensor } from "../core/tensor.js";
import { add, cast } from "../ops/elementwise.js";
import { einsum } from "../ops/matmul.js";
import { getActivation } from "../ops/nn.js";
import type { MoeConfig } from "./config.js";

export interface GateLogitOutput {
  /** post-score, post-bias logits [B,S,E] */
  logits_BSE: Tensor;
  /** post-score, pre-bias scores [B,S,E], only for deepseek3 model names */
  preBiasLogits_BSE: Tensor | undefined;
}

/** The gate's compute dtype: float32 if float32_gate_logits, else the layer dtype. */
export function gateDtype(cfg: MoeConfig): MoeConfig["dtype"] {
  return cfg.float32GateLogits && cfg.dtype === "bfloat16" ? "float32" : cfg.dtype;
}

/**
 * GateLogit.__call__: logits = score(x · kernel) (+ bias). pre_bias_logits are returned only for
 * deepseek3 models, whose routing weights use the scores before the bias.
 *
 * Arguments: kernel_DE [D,E], bias_E [E] (when routed_bias), inputs_BSD [B,S,D].
 */
export function gateLogit(cfg: MoeConfig, kernel_DE: Tensor, bias_E: Tensor | undefined, inputs_BSD: Tensor): GateLogitOutput {
  const dt = gateDtype(cfg);
  let out = einsum("BSD,DE->BSE", cast(inputs_BSD, dt), cast(kernel_DE, dt));
  if (cfg.routedScoreFunc !== "") out = getActivation(cfg.routedScoreFunc)(out);
  const pre = cfg.isDeepseek3 ? out : undefined;
  if (cfg.routedBias) {
    if (bias_E === undefined) throw new Error("[gate] routed_bias=true needs gate/bias");
    out = add(out, cast(bias_E, dt));
  }
  return { logits_BSE: out, preBiasLogits_BSE: pre };
}
