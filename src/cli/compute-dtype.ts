// The CLI's compute dtype. MaxText's default `dtype: bfloat16` has no fused expert kernel: its activations run
// on the op composition, far slower than float32 on the same layer. So `moekit run` computes such a layer with
// float32 activations and bfloat16 weights (the operands MaxText's bf16 matmuls see) when the dtype is MaxText's
// default; a dtype the config, the preset or `--set` names is run as given.
import type { MoeConfig } from "../moe/config.js";

export interface ComputeDtype {
  /** MaxText keys to merge on top of the layer's keys (empty: run as configured). */
  overrides: Record<string, unknown>;
  /** One line for the user when the dtype was changed. */
  note: string | undefined;
}

/** What `moekit run` computes `cfg` in, given the keys the user wrote (config or preset keys, then --set). */
export function computeDtype(cfg: MoeConfig, given: Readonly<Record<string, unknown>>): ComputeDtype {
  if (cfg.dtype !== "bfloat16" || "dtype" in given) return { overrides: {}, note: undefined };
  const weightDtype = cfg.weightDtype === "float32" ? "bfloat16" : cfg.weightDtype;
  return {
    overrides: { dtype: "float32", weight_dtype: weightDtype },
    note: `dtype=bfloat16 activations have no fused kernel (slow); computing with float32 activations and ${weightDtype} weights (set dtype: bfloat16 in the config or --set dtype=bfloat16 to keep them)`,
  };
}
