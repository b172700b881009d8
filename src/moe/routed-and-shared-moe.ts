import { MoeError } from "../core/errors.js";
import type { Tensor } from "../core/tensor.js";
import { add } from "../ops/elementwise.js";
import { MlpBlock } from "../nn/mlp.js";
import { Module, type Params } from "../nn/module.js";
import { checkKey, foldIn, prngKey, type Key } from "../nn/random.js";
import { checkIsConfig, type MoeConfig } from "./config.js";
import { checkOptionKeys, optionKeys } from "../core/suggest.js";
import {
  RoutedMoE,
  routedMoeForward,
  routedMoeParamShapes,
  type ForwardOptions,
  type MoeOutput,
  type RoutedMoeWeights,
} from "./routed-moe.js";
import { mlpForward, type MlpKernels } from "./shared-mlp.js";
import type { ExpertWeight } from "./experts.js";
import { weightEstimate } from "./memory-estimate.js";
import { checkMemory } from "../core/memory.js";
import { denseQuant, QuantSite, siteKey } from "./quantization.js";
import { checkFinite } from "./finite.js";

export interface SharedMoeOutput extends MoeOutput {
  routedOutput: Tensor;
  sharedOutput: Tensor;
}

/** A RoutedAndSharedMoE's weights: the routed experts' and the shared MLP's. */
export interface RoutedAndSharedMoeWeights<W extends ExpertWeight = Tensor> {
  routed: RoutedMoeWeights<W>;
  /** the shared MLP's kernels by MlpBlock path: "wi_0/kernel" [D,Hs], "wi_1/kernel" [D,Hs], "wo/kernel" [Hs,D] */
  shared: MlpKernels;
}

/** The shared experts' part of RoutedAndSharedMoE.forward on x [B,S,D] (their quantized-gradient noise keyed by site). */
export function sharedExpertsForward(
  cfg: MoeConfig,
  shared: MlpKernels,
  x_BSD: Tensor,
  opts: Pick<ForwardOptions, "quantKey"> & { dropoutKey?: Key } = {},
): Tensor {
  return mlpForward(cfg, shared, x_BSD, opts.dropoutKey, siteKey(opts.quantKey, QuantSite.SharedMlp));
}

/**
 * RoutedAndSharedMoE.forward as a pure function of the config, the weights and the input [B,S,D] (what
 * valueAndGrad differentiates, as routedMoeForward is RoutedMoE's): routed(x) + shared_experts(x).
 */
export function routedAndSharedMoeForward(
  cfg: MoeConfig,
  w: RoutedAndSharedMoeWeights<ExpertWeight>,
  inputs_BSD: Tensor,
  opts: ForwardOptions & { dropoutKey?: Key } = {},
): SharedMoeOutput {
  checkOptionKeys(w, optionKeys<RoutedAndSharedMoeWeights>({ routed: true, shared: true }), "RoutedAndSharedMoE weights", "field");
  for (const f of ["routed", "shared"] as const)
    if (typeof w[f] !== "object" || w[f] === null)
      throw new MoeError(`[RoutedAndSharedMoE] weights.${f} is missing: give { routed, shared }`);
  if (opts.checkFinite === true) checkFinite(w.shared, "RoutedAndSharedMoE shared_experts");
  const r = routedMoeForward(cfg, w.routed, inputs_BSD, opts);
  const sharedOutput = sharedExpertsForward(cfg, w.shared, inputs_BSD, opts);
  const output = add(r.output, sharedOutput);
  if (opts.checkFinite === true) checkFinite(output, "RoutedAndSharedMoE output");
  return { ...r, output, routedOutput: r.output, sharedOutput };
}

/** Width of the shared MLP: shared_experts × (mlp_dim for Gemma4, moe_mlp_dim otherwise). */
export function sharedExpertDim(cfg: MoeConfig): number {
  return cfg.sharedExperts * (cfg.decoderBlock === "gemma4" ? cfg.mlpDim : cfg.moeMlpDim);
}

/** Shapes of a layer's parameters: the routed experts and gate, and the shared MLP (wi_0, wi_1, wo) when `shared`. */
export function layerParamShapes(config: MoeConfig, shared: boolean, Hs = sharedExpertDim(config)): number[][] {
  const routed = Object.values(routedMoeParamShapes(config, config.moeMlpDim));
  if (!shared) return routed;
  const D = config.expertInputDim;
  return [...routed, [D, Hs], [D, Hs], [Hs, D]];
}

/** The shared-expert MlpBlock of a layer config: its activations, dtypes, dropout and fp32 flag. */
export function sharedMlpBlock(config: MoeConfig, intermediateDim: number, key?: Key): MlpBlock {
  return new MlpBlock({
    inFeatures: config.expertInputDim,
    intermediateDim,
    activations: config.mlpActivations,
    dtype: config.dtype,
    weightDtype: config.weightDtype,
    intermediateDropoutRate: config.dropoutRate,
    activationsInFloat32: config.activationsInFloat32,
    quant: (key) => denseQuant(config, key),
    ...(key === undefined ? {} : { key }),
  });
}

/**
 * MaxText's RoutedAndSharedMoE: routed experts (`MoeBlock_0`) plus a dense shared MLP, summed.
 * Parameter paths: "MoeBlock_0/<routed path>", "shared_experts/<mlp path>".
 */
export class RoutedAndSharedMoE extends Module {
  readonly config: MoeConfig;
  readonly routedMoe: RoutedMoE;
  readonly sharedExperts: MlpBlock;

  constructor(config: MoeConfig, opts: { key?: Key } = {}) {
    super();
    checkIsConfig(config, "RoutedAndSharedMoE");
    checkOptionKeys(opts, ["key"], "RoutedAndSharedMoE");
    this.config = config;
    checkMemory("RoutedAndSharedMoE", weightEstimate(layerParamShapes(config, true), config.weightDtype));
    if (opts.key !== undefined) checkKey(opts.key, "RoutedAndSharedMoE");
    const key = opts.key ?? prngKey(0);
    this.routedMoe = new RoutedMoE(config, { intermediateDim: config.moeMlpDim, key: foldIn(key, 0) });
    this.sharedExperts = sharedMlpBlock(config, sharedExpertDim(config), foldIn(key, 1));
  }

  parameters(): [string, Tensor][] {
    return [
      ...this.routedMoe.parameters().map(([p, t]): [string, Tensor] => [`MoeBlock_0/${p}`, t]),
      ...this.sharedExperts.parameters().map(([p, t]): [string, Tensor] => [`shared_experts/${p}`, t]),
    ];
  }

  protected setParameters(params: Params): void {
    const routed: Params = {};
    const shared: Params = {};
    for (const [p, t] of Object.entries(params)) {
      if (p.startsWith("MoeBlock_0/")) routed[p.slice("MoeBlock_0/".length)] = t;
      else shared[p.slice("shared_experts/".length)] = t;
    }
    this.routedMoe.loadParameters(routed);
    this.sharedExperts.loadParameters(shared);
  }

  /** The weights routedAndSharedMoeForward takes: the tensors this module holds. */
  get weights(): RoutedAndSharedMoeWeights {
    return { routed: this.routedMoe.weights, shared: this.sharedExperts.paramRecord() };
  }

  forward(inputs_BSD: Tensor, opts: ForwardOptions & { dropoutKey?: Key } = {}): SharedMoeOutput {
    return routedAndSharedMoeForward(this.config, this.weights, inputs_BSD, opts);
  }
}
