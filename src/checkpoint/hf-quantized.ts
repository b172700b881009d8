// Quantized Hugging Face checkpoints read in their compact form (docs/quantization.md, "Checkpoints as shipped"):
//   DeepSeek-V3 FP8  experts.{e}.{gate,up,down}_proj.weight F8_E4M3 [out, in] + weight_scale_inv F32
//                    [⌈out/128⌉, ⌈in/128⌉]: stacked into fp8_e4m3 QuantizedWeights (codes as stored); the shared
//                    experts' kernels likewise, as one group [1, in, out].
//   GPT-OSS MXFP4    experts.{gate_up,down}_proj_blocks U8 [E, rows, cols/32, 16] + _scales U8 (e8m0)
//                    [E, rows, cols/32], rows = out, cols = in: mxfp4 QuantizedWeights; gate_up's rows are
//                    interleaved, gate = even rows (columns of the [E, cols, rows] weight).
// Legend: E experts, D model dim, H expert hidden.
import { allocate, type DType } from "../core/dtype.js";
import { Tensor } from "../core/tensor.js";
import { fmt, shapesEqual } from "../core/shape.js";
import type { StorageDType } from "../io/index.js";
import { weightLayout } from "../prims/quantized-gmm.js";
import type { QuantizedWeight } from "../ops/quantized-weight.js";
import type { HfQuantization } from "./hf-config.js";
import type { HfRule } from "./hf-layout.js";
import { CheckpointLayoutError, type TensorSource } from "./layer.js";
import { splitAxis } from "./transforms.js";

/** A stored tensor a quantized rule expects. */
interface Stored {
  shape: number[];
  dtype: StorageDType;
}

const c128 = (n: number): number => Math.ceil(n / 128);
const fp8 = (name: string, out: number, inn: number): [string, Stored][] => [
  [name, { shape: [out, inn], dtype: "F8_E4M3" }],
  [`${name}_scale_inv`, { shape: [c128(out), c128(inn)], dtype: "F32" }],
];
const mx = (base: string, E: number, rows: number, cols: number): [string, Stored][] => [
  [`${base}_blocks`, { shape: [E, rows, cols / 32, 16], dtype: "U8" }],
  [`${base}_scales`, { shape: [E, rows, cols / 32], dtype: "U8" }],
];

/** The stored tensors of `rule` in a checkpoint quantized as `q`, or undefined when the rule's tensors are float. */
export function quantizedHfTensors(
  q: HfQuantization | undefined,
  rule: HfRule,
  mt: Record<string, number[]>,
  E: number,
): Map<string, Stored> | undefined {
  if (q === "fp8_e4m3" && rule.kind === "experts") {
    const [, inn, out] = mt[rule.mt]!;
    return new Map(Array.from({ length: E }, (_, e) => fp8(rule.hf(e), out!, inn!)).flat());
  }
  if (q === "fp8_e4m3" && rule.kind === "transposed" && rule.hf.endsWith("_proj.weight")) {
    const [inn, out] = mt[rule.mt]!;
    return new Map(fp8(rule.hf, out!, inn!));
  }
  const mxfp4Rule =
    (rule.kind === "splitLast" && rule.hf.endsWith("experts.gate_up_proj")) ||
    (rule.kind === "copy" && rule.hf.endsWith("experts.down_proj"));
  if (q !== "mxfp4" || !mxfp4Rule) return undefined;
  const [, inn, out] = mt[typeof rule.mt === "string" ? rule.mt : rule.mt[0]]!;
  const rows = rule.kind === "splitLast" ? 2 * out! : out!;
  if (inn! % 32 !== 0) throw new CheckpointLayoutError(rule.hf, `mxfp4 needs the input width (${inn}) to be a multiple of 32`);
  return new Map(mx(rule.hf, E, rows, inn!));
}

/** Checks a stored tensor's header against what the rule expects. */
export function checkStored(src: TensorSource, name: string, want: Stored, source: string): void {
  if (!src.has(name))
    throw new CheckpointLayoutError(source, `missing tensor ${name} ${want.dtype}${fmt(want.shape)} (quantized checkpoint)`);
  const info = src.info(name);
  if (info.dtype !== want.dtype || !shapesEqual(info.shape, want.shape))
    throw new CheckpointLayoutError(source, `tensor ${name} is ${info.dtype}${fmt(info.shape)}, expected ${want.dtype}${fmt(want.shape)}`);
}

/** E tensors of one shape stacked on a new axis 0 (codes stay bytes). */
function stack(E: number, read: (e: number) => Tensor, dtype: DType): Tensor {
  const first = read(0);
  const out = allocate(dtype, E * first.size);
  for (let e = 0; e < E; e++) out.set((e === 0 ? first : read(e)).data, e * first.size);
  return new Tensor(out, [E, ...first.shape], dtype);
}

/** Reads a quantized rule as QuantizedWeights by module path (a 2-D shared kernel [k,n] as one group [1,k,n]). */
export function readQuantizedRule(
  q: HfQuantization,
  rule: HfRule,
  src: TensorSource,
  mt: Record<string, number[]>,
  E: number,
): Record<string, QuantizedWeight> {
  const codes = (name: string): Tensor => src.get(name, { dtype: "uint8" });
  const f32 = (name: string): Tensor => src.get(name, { dtype: "float32" });
  const weight = (p: string, format: QuantizedWeight["format"], c: Tensor, s: Tensor): Record<string, QuantizedWeight> => {
    const shape = mt[p]!;
    const [G, k, n] = (shape.length === 2 ? [1, ...shape] : shape) as [number, number, number];
    const { codes: cl, scales: sl } = weightLayout(format, G, k, n);
    return {
      [p]: { format, shape: [G, k, n], codes: new Tensor(c.data, cl.shape, "uint8"), scales: new Tensor(s.data, sl.shape, s.dtype) },
    };
  };
  if (rule.kind === "experts")
    return weight(
      rule.mt,
      "fp8_e4m3",
      stack(E, (e) => codes(rule.hf(e)), "uint8"),
      stack(E, (e) => f32(`${rule.hf(e)}_scale_inv`), "float32"),
    );
  if (rule.kind === "transposed") return weight(rule.mt, "fp8_e4m3", codes(rule.hf), f32(`${rule.hf}_scale_inv`));
  if (q !== "mxfp4" || (rule.kind !== "copy" && rule.kind !== "splitLast"))
    throw new CheckpointLayoutError(rule.hf, `no ${q} reading for a ${rule.kind} rule`);
  const blocks = codes(`${rule.hf}_blocks`);
  const scales = codes(`${rule.hf}_scales`);
  if (rule.kind === "copy") return weight(rule.mt, "mxfp4", blocks, scales);
  const [b0, b1] = splitAxis(blocks, 1, "interleave");
  const [s0, s1] = splitAxis(scales, 1, "interleave");
  return { ...weight(rule.mt[0], "mxfp4", b0, s0), ...weight(rule.mt[1], "mxfp4", b1, s1) };
}
