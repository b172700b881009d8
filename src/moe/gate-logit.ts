// Legend: B batch, S sequence, D model dim (emb), E experts.
import { tensorArg } from "../ops/args.js";
import type { DType } from "../core/dtype.js";
import { full, type Tensor } from "../core/tensor.js";
import { defaultKernelInit, type NdInitializer } from "../nn/init.js";
import { Module, type Params } from "../nn/module.js";
import { prngKey, split, type Key } from "../nn/random.js";
import { add, cast } from "../ops/elementwise.js";
import { castServed, quantizedEinsum, type DotQuant } from "../ops/quantize.js";
import { getActivation } from "../ops/nn.js";
import { groupRouting, type MoeConfig } from "./config.js";
import { ConfigError } from "../core/errors.js";
import { denseQuant, QuantSite, siteKey } from "./quantization.js";

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

export interface GateComputeOptions {
  dtype: DType;
  scoreFunc: string;
  /** return the pre-bias scores (deepseek3 models) */
  keepPreBias: boolean;
  /** the quantized dot_general of the layer's quantization */
  quant?: DotQuant | undefined;
}

/** score(cast(x)·kernel) (+ bias), returning the pre-bias scores when asked. */
export function computeGateLogits(
  kernel_DE: Tensor,
  bias_E: Tensor | undefined,
  inputs_BSD: Tensor,
  o: GateComputeOptions,
): GateLogitOutput {
  let out = quantizedEinsum("BSD,DE->BSE", cast(inputs_BSD, o.dtype), castServed(kernel_DE, o.dtype), o.quant);
  if (o.scoreFunc !== "") out = getActivation(o.scoreFunc)(out);
  const pre = o.keepPreBias ? out : undefined;
  if (bias_E !== undefined) out = add(out, cast(bias_E, o.dtype));
  return { logits_BSE: out, preBiasLogits_BSE: pre };
}

/**
 * GateLogit.__call__ for a layer config: logits = score(x · kernel) (+ bias). pre_bias_logits are
 * returned only for deepseek3 models, whose routing weights use the scores before the bias.
 *
 * Arguments: kernel_DE [D,E], bias_E [E] (when routed_bias), inputs_BSD [B,S,D].
 */
export function gateLogit(
  cfg: MoeConfig,
  kernel_DE: Tensor,
  bias_E: Tensor | undefined,
  inputs_BSD: Tensor,
  quantKey?: Key,
): GateLogitOutput {
  if (cfg.routedBias && bias_E === undefined) throw new ConfigError("routed_bias", true, "needs the gate/bias parameter");
  return computeGateLogits(kernel_DE, cfg.routedBias ? bias_E : undefined, inputs_BSD, {
    dtype: gateDtype(cfg),
    scoreFunc: cfg.routedScoreFunc,
    keepPreBias: groupRouting(cfg),
    quant: denseQuant(cfg, siteKey(quantKey, QuantSite.Gate)),
  });
}

export interface GateLogitOptions {
  /** D: contracted input features */
  inFeatures: number;
  /** E: number of experts */
  outFeatures: number;
  modelName: string;
  weightDtype?: DType;
  dtype?: DType;
  useBias?: boolean;
  scoreFunc?: string;
  /** quantized dot_general (default: float) */
  quant?: DotQuant;
  key?: Key;
  kernelInit?: NdInitializer;
}

/**
 * MaxText's GateLogit module: kernel [D,E] (variance scaling, fan_in = D) and an optional bias [E]
 * (zeros). forward returns [logits, preBiasLogits | undefined] as the seed's __call__.
 */
export class GateLogit extends Module {
  readonly opts: Required<Omit<GateLogitOptions, "key" | "kernelInit" | "quant">> & Pick<GateLogitOptions, "quant">;
  kernel: Tensor;
  bias: Tensor | undefined;

  constructor(opts: GateLogitOptions) {
    super();
    this.opts = { weightDtype: "float32", dtype: "float32", useBias: false, scoreFunc: "", ...opts } as GateLogit["opts"];
    const init = opts.kernelInit ?? defaultKernelInit;
    const [k] = split(opts.key ?? prngKey(0), 1);
    this.kernel = init(k!, [opts.inFeatures, opts.outFeatures], this.opts.weightDtype, [0], [1]);
    this.bias = this.opts.useBias ? full([opts.outFeatures], 0, this.opts.weightDtype) : undefined;
  }

  parameters(): [string, Tensor][] {
    return this.bias === undefined
      ? [["kernel", this.kernel]]
      : [
          ["kernel", this.kernel],
          ["bias", this.bias],
        ];
  }

  protected setParameters(params: Params): void {
    if (params.kernel !== undefined) this.kernel = params.kernel;
    if (params.bias !== undefined) this.bias = params.bias;
  }

  forward(inputs: Tensor): [Tensor, Tensor | undefined] {
    tensorArg(inputs, "GateLogit", "the input");
    const o = this.opts;
    const r = computeGateLogits(this.kernel, this.bias, inputs, {
      dtype: o.dtype,
      scoreFunc: o.scoreFunc,
      keepPreBias: o.modelName.startsWith("deepseek3"),
      quant: o.quant,
    });
    return [r.logits_BSE, r.preBiasLogits_BSE];
  }
}
