// MaxText's MlpBlock (the shared experts) as a pure function of its kernels, for the layers' pure forwards.
// Legend: B batch, S sequence, D model dim, H hidden.
import { ShapeError } from "../core/errors.js";
import type { Tensor } from "../core/tensor.js";
import { cast, mul, upcastF32 } from "../ops/elementwise.js";
import { quantizedEinsum } from "../ops/quantize.js";
import { isQuantizedWeight } from "../ops/quantized-weight.js";
import { getActivation } from "../ops/nn.js";
import { dropout, wiPaths } from "../nn/mlp.js";
import { foldIn, type Key } from "../nn/random.js";
import { didYouMean } from "../core/suggest.js";
import type { MoeConfig } from "./config.js";
import type { ExpertWeight } from "./experts.js";
import { denseQuant, servedLhsBits } from "./quantization.js";
import { servedDense } from "./served.js";
import { tensorArg } from "../ops/args.js";

/** Kernel paths of a MaxText MlpBlock: its input kernels' (wiPaths), then "wo/kernel". */
export function mlpKernelPaths(numActivations: number): string[] {
  return [...wiPaths(numActivations), "wo/kernel"];
}

/** Kernels of a MaxText MlpBlock by path ("wi_0/kernel" [D,Hs], ..., "wo/kernel" [Hs,D]); held quantized: [1,k,n]. */
export type MlpKernels = Record<string, ExpertWeight>;

/** Each kernel a weight of [D,Hs] (wi) or [Hs,D] (wo), one Hs for all, named where it is not (an einsum named only labels). */
function checkKernelShapes(kernels: MlpKernels, paths: readonly string[], D: number): void {
  let Hs: number | undefined;
  for (const p of paths) {
    const k = kernels[p];
    if (k === undefined) throw new ShapeError(`[mlp] missing kernel ${p}`);
    if (!isQuantizedWeight(k)) tensorArg(k, "mlp", `kernel ${p}`);
    const [rows, cols] = isQuantizedWeight(k) ? k.shape.slice(1) : k.shape;
    const wo = p === "wo/kernel";
    Hs ??= wo ? rows : cols;
    const want = wo ? [Hs, D] : [D, Hs];
    if ((isQuantizedWeight(k) ? k.shape[0] !== 1 : k.ndim !== 2) || rows !== want[0] || cols !== want[1])
      throw new ShapeError(`[mlp] kernel ${p} is [${k.shape.join(",")}], expected [${want.join(",")}] (D=${D}, Hs=${Hs})`);
  }
}

/**
 * MlpBlock.forward as a pure function (no bias, no pre-norm): h = Π_i act_i(x·wi_i) (fp32 before the
 * activation when activations_in_float32), cast to the layer dtype, dropout (dropout_rate > 0 needs
 * `dropoutKey`), h·wo. `quantKey` draws the quantized gradients' noise, kernel i's from foldIn(quantKey, i), as
 * MlpBlock does.
 */
export function mlpForward(cfg: MoeConfig, kernels: MlpKernels, x_BSD: Tensor, dropoutKey?: Key, quantKey?: Key): Tensor {
  const dt = cfg.dtype;
  const paths = mlpKernelPaths(cfg.mlpActivations.length);
  // a kernel of another activation count (wi_2 beside two activations) would be ignored
  for (const k of Object.keys(kernels))
    if (!paths.includes(k) && kernels[k] !== undefined)
      throw new ShapeError(
        `[mlp] unknown kernel ${k}${didYouMean(k, paths)} (mlp_activations has ${cfg.mlpActivations.length}: ${paths.join(", ")})`,
      );
  checkKernelShapes(kernels, paths, x_BSD.shape.at(-1)!);
  const xx = cast(x_BSD, dt);
  const mm = (spec: string, lhs: Tensor, k: ExpertWeight, i: number): Tensor =>
    isQuantizedWeight(k)
      ? servedDense(lhs, k, servedLhsBits(cfg))
      : quantizedEinsum(spec, lhs, cast(k, dt), denseQuant(cfg, quantKey === undefined ? undefined : foldIn(quantKey, i)));
  let h: Tensor | undefined;
  // every kernel is there (checkKernelShapes)
  paths.slice(0, -1).forEach((p, i) => {
    let z = mm("BSD,DH->BSH", xx, kernels[p]!, i);
    if (cfg.activationsInFloat32) z = upcastF32(z);
    const a = getActivation(cfg.mlpActivations[i]!)(z);
    h = h === undefined ? a : mul(h, a);
  });
  let hh = cast(h!, dt);
  if (cfg.dropoutRate > 0) hh = dropout(hh, cfg.dropoutRate, dropoutKey);
  return mm("BSH,HD->BSD", hh, kernels["wo/kernel"]!, paths.length - 1);
}
