// Non-finite gate logits would route every token to the lowest expert ids without a word: one pass over
// logits [B,S,E] refuses them, and only then the input and gate weights are searched for the culprit.
// Legend: B batch, S sequence, D model dim, E experts.
import { MoeError } from "../core/errors.js";
import { strides } from "../core/shape.js";
import type { Tensor } from "../core/tensor.js";

/** Index of the first NaN or ±Inf in `t`, or -1. */
function firstNonFinite(t: Tensor): number {
  const d = t.data;
  for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) return i;
  return -1;
}

/** "NaN at [0,3,1]" for flat index `i` of `t`. */
function describe(t: Tensor, i: number): string {
  const at = strides(t.shape).map((s, k) => Math.floor(i / s) % t.shape[k]!);
  return `${String(t.data[i])} at [${at.join(",")}]`;
}

/** The gate's operands, named as the user knows them. */
export interface GateOperands {
  /** what the user calls the gate's input ("the layer input", "gate_inputs") */
  inputName: string;
  inputs_BSD: Tensor;
  kernel_DE: Tensor;
  bias_E: Tensor | undefined;
}

/** Throws a MoeError when `logits_BSE` holds NaN or ±Inf, naming the first one and the operand that holds one. */
export function checkGateLogits(logits_BSE: Tensor, operands: GateOperands, where = "RoutedMoE"): void {
  const bad = firstNonFinite(logits_BSE);
  if (bad < 0) return;
  const named: [string, Tensor | undefined][] = [
    [operands.inputName, operands.inputs_BSD],
    ["the gate kernel (gate/kernel)", operands.kernel_DE],
    ["the gate bias (gate/bias)", operands.bias_E],
  ];
  let culprit = "the gate matmul overflowed";
  for (const [name, t] of named) {
    const i = t === undefined ? -1 : firstNonFinite(t);
    if (i >= 0) {
      culprit = `${name} ${t!.dtype}[${t!.shape.join(",")}] holds ${describe(t!, i)}`;
      break;
    }
  }
  throw new MoeError(`[${where}] gate logits are not finite (${describe(logits_BSE, bad)}): ${culprit}`);
}
