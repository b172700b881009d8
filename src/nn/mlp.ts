// Legend: B batch, S sequence, D model dim, H hidden.
import { tensorArg } from "../ops/args.js";
import { ConfigError, ShapeError } from "../core/errors.js";
import type { DType } from "../core/dtype.js";
import { fmt } from "../core/shape.js";
import { tensor, type Tensor } from "../core/tensor.js";
import { cast, div, mul, upcastF32 } from "../ops/elementwise.js";
import { quantizedEinsum, type DotQuant } from "../ops/quantize.js";
import { getActivation } from "../ops/nn.js";
import { defaultKernelInit, type NdInitializer } from "./init.js";
import { Module, type Params } from "./module.js";
import { foldIn, prngKey, split, uniform, type Key } from "./random.js";

export interface MlpBlockOptions {
  inFeatures: number;
  intermediateDim: number;
  activations: readonly string[];
  dtype: DType;
  weightDtype: DType;
  intermediateDropoutRate?: number;
  activationsInFloat32?: boolean;
  /** the quantized dot_general of each matmul given its gradient key (forward's quantKey folded with its index); default float */
  quant?: ((key: Key | undefined) => DotQuant | undefined) | undefined;
  key?: Key;
  kernelInit?: NdInitializer;
}

/** Input kernel paths of a MaxText MlpBlock: "wi/kernel" with one activation, else "wi_0/kernel", "wi_1/kernel", ... */
export function wiPaths(n: number): string[] {
  return n === 1 ? ["wi/kernel"] : Array.from({ length: n }, (_, i) => `wi_${i}/kernel`);
}

/**
 * MaxText linears.MlpBlock (no bias, no pre-norm): h = Π_i act_i(x·wi_i), dropout, h·wo.
 * With ["silu","linear"] this is SwiGLU.
 */
export class MlpBlock extends Module {
  readonly opts: MlpBlockOptions;
  kernels: Map<string, Tensor>;

  constructor(opts: MlpBlockOptions) {
    super();
    this.opts = opts;
    const init = opts.kernelInit ?? defaultKernelInit;
    const paths = [...wiPaths(opts.activations.length), "wo/kernel"];
    const keys = split(opts.key ?? prngKey(1), paths.length);
    this.kernels = new Map(
      paths.map((p, i) => {
        const shape = p === "wo/kernel" ? [opts.intermediateDim, opts.inFeatures] : [opts.inFeatures, opts.intermediateDim];
        return [p, init(keys[i]!, shape, opts.weightDtype, [0], [1])];
      }),
    );
  }

  parameters(): [string, Tensor][] {
    return [...this.kernels.entries()];
  }

  protected setParameters(params: Params): void {
    for (const [p, t] of Object.entries(params)) this.kernels.set(p, t);
  }

  /** x [..., D] -> [..., D]. A positive dropout rate needs `dropoutKey`; `quantKey` draws quantized gradients' noise. */
  forward(x: Tensor, dropoutKey?: Key, quantKey?: Key): Tensor {
    tensorArg(x, "MlpBlock", "the input");
    const { activations, dtype } = this.opts;
    if (x.shape[x.ndim - 1] !== this.opts.inFeatures) {
      throw new ShapeError(`[MlpBlock] input ${fmt(x.shape)} must end in ${this.opts.inFeatures}`);
    }
    const xx = cast(x, dtype);
    const quant = (i: number): DotQuant | undefined => this.opts.quant?.(quantKey === undefined ? undefined : foldIn(quantKey, i));
    let h: Tensor | undefined;
    wiPaths(activations.length).forEach((p, i) => {
      let z = quantizedEinsum("BSD,DH->BSH", xx, cast(this.kernels.get(p)!, dtype), quant(i));
      if (this.opts.activationsInFloat32) z = upcastF32(z);
      const a = getActivation(activations[i]!)(z);
      h = h === undefined ? a : mul(h, a);
    });
    let hh = cast(h!, dtype);
    const rate = this.opts.intermediateDropoutRate ?? 0;
    if (rate > 0) hh = dropout(hh, rate, dropoutKey);
    return quantizedEinsum("BSH,HD->BSD", hh, cast(this.kernels.get("wo/kernel")!, dtype), quant(activations.length));
  }
}

/** Inverted dropout, mask shared across the sequence axis (MaxText broadcast_dims=(-2,)). */
export function dropout(h_BSH: Tensor, rate: number, key: Key | undefined): Tensor {
  if (key === undefined) throw new ConfigError("dropout_rate", rate, "dropout needs an explicit PRNG key (dropoutKey)");
  const [B, , H] = h_BSH.shape as [number, number, number];
  const u = uniform(key, [B, 1, H], 0, 1, "float64");
  const keep = tensor(
    Array.from(u.data, (v) => (v < 1 - rate ? 1 : 0)),
    [B, 1, H],
    h_BSH.dtype,
  );
  return div(mul(h_BSH, keep), 1 - rate);
}
