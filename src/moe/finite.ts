// NaN and Inf, refused with the tensor and the first bad position named. Non-finite gate logits would route every
// token to the lowest expert ids without a word: one pass over logits [B,S,E] refuses them, and only then the input
// and gate weights are searched for the culprit. The rest is opt-in (`checkFinite`, ForwardOptions.checkFinite,
// moekit run): a scan of every element, kept off the default path.
// Legend: B batch, S sequence, D model dim, E experts.
import { MoeError } from "../core/errors.js";
import { positionOf } from "../core/shape.js";
import { checkValues, Tensor } from "../core/tensor.js";
import { isQuantizedWeight, type QuantizedWeight } from "../ops/quantized-weight.js";
import type { WeightFormat } from "../prims/quantized-gmm.js";

/** A tensor holding NaN or ±Inf. The message reads `[name] path dtype[shape] holds NaN at [i,j,...]`. */
export class NonFiniteError extends MoeError {
  override name = "NonFiniteError";
  constructor(
    /** the tensor's name: `name`, then its path in the tree, as `checkFinite` was given them */
    readonly tensor: string,
    /** position of the first non-finite element */
    readonly index: readonly number[],
    readonly value: number,
    message: string,
  ) {
    super(message);
  }
}

/** Index of the first NaN or ±Inf in `t`, or -1. */
function firstNonFinite(t: Tensor): number {
  const d = t.data;
  for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) return i;
  return -1;
}

/** "NaN at [0,3,1]" for flat index `i` of `t`. */
function describe(t: Tensor, i: number): string {
  return `${String(t.data[i])} at [${positionOf(t.shape, i).join(",")}]`;
}

/** Tensors, possibly nested in arrays and objects (a weights record, a layer's params); other leaves are skipped. */
type TensorTree = Tensor | undefined | null | readonly TensorTree[] | { readonly [key: string]: unknown };

const join = (path: string, key: string | number): string => (path === "" ? `${key}` : `${path}/${key}`);

/** The tensors and quantized weights of a tree, with their paths. */
function* leaves(tree: unknown, path: string): Generator<[string, Tensor | QuantizedWeight]> {
  if (tree instanceof Tensor || isQuantizedWeight(tree)) yield [path, tree];
  else if (Array.isArray(tree)) for (const [i, t] of tree.entries()) yield* leaves(t, join(path, i));
  else if (typeof tree === "object" && tree !== null) {
    for (const [k, t] of Object.entries(tree)) yield* leaves(t, join(path, k));
  }
}

/** The byte codes that decode to NaN in checkpoint formats stored as bytes: e4m3fn 0x7f/0xff, an e8m0 scale 0xff. */
const NAN_BYTES: Partial<Record<WeightFormat, ["codes" | "scales", number[]]>> = {
  fp8_e4m3: ["codes", [0x7f, 0xff]],
  mxfp4: ["scales", [0xff]],
};

/**
 * Throws a NonFiniteError when a tensor of `tree` (a tensor, or tensors in arrays and objects) holds NaN or ±Inf,
 * naming it (`name`, then its path in the tree) and its first non-finite element; for FP8 and MXFP4 storage, its
 * first NaN code (position in storage order). Reads every element.
 */
export function checkFinite(tree: TensorTree, name: string): void {
  const found = [...leaves(tree, "")];
  const named = (path: string): string => (path === "" ? name : `${name} ${path}`);
  for (const [path, w] of found) {
    const rule = w instanceof Tensor ? undefined : NAN_BYTES[w.format];
    if (w instanceof Tensor || rule === undefined) continue;
    const t = w[rule[0]];
    const i = (t.data as Uint8Array).findIndex((b) => rule[1].includes(b));
    if (i < 0) continue;
    const tensor = named(join(path, rule[0]));
    const code = `0x${(t.data[i] as number).toString(16)}`;
    throw new NonFiniteError(
      tensor,
      [i],
      NaN,
      `[${tensor}] ${t.dtype}[${t.shape.join(",")}] holds the NaN code ${code} at storage index ${i}`,
    );
  }
  const tensors = found.flatMap(([path, w]): [string, Tensor][] =>
    w instanceof Tensor
      ? [[path, w]]
      : [
          [join(path, "codes"), w.codes],
          [join(path, "scales"), w.scales],
        ],
  );
  for (const [path, t] of tensors) {
    const bad = firstNonFinite(t);
    if (bad < 0) continue;
    const tensor = named(path);
    throw new NonFiniteError(
      tensor,
      positionOf(t.shape, bad),
      t.data[bad]!,
      `[${tensor}] ${t.dtype}[${t.shape.join(",")}] holds ${describe(t, bad)}`,
    );
  }
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
  const { inputs_BSD, kernel_DE, bias_E } = operands;
  // every call, replays of a jit included
  checkValues([logits_BSE, inputs_BSD, kernel_DE, ...(bias_E === undefined ? [] : [bias_E])], ([l, x, k, b]) =>
    gateLogitsFinite(l!, { ...operands, inputs_BSD: x!, kernel_DE: k!, bias_E: b }, where),
  );
}

function gateLogitsFinite(logits_BSE: Tensor, operands: GateOperands, where: string): void {
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
