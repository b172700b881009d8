// A routed MoE plus a sigmoid-gated shared expert: out = routed(x) + sigmoid(x·w_g) ⊙ shared(x).
// This is Qwen2-MoE's / Qwen3-Next's block (MaxText: Qwen3NextSparseMoeBlock). It is an extension beyond
// RoutedAndSharedMoE, whose shared MLP is added without a gate.
// Legend: B batch, S sequence, D model dim, H expert hidden, Hs shared hidden.
import { ShapeError } from "../core/errors.js";
import { fmt } from "../core/shape.js";
import type { Tensor } from "../core/tensor.js";
import { add, cast, mul, sigmoid } from "../ops/elementwise.js";
import { quantizedEinsum } from "../ops/quantize.js";
import { denseQuant } from "./quantization.js";
import { defaultKernelInit } from "../nn/init.js";
import { MlpBlock } from "../nn/mlp.js";
import { Module, type Params } from "../nn/module.js";
import { checkKey, foldIn, prngKey, type Key } from "../nn/random.js";
import { checkIsConfig, type MoeConfig } from "./config.js";
import { checkOptionKeys, optionKeys } from "../core/suggest.js";
import type { ExpertWeight } from "./experts.js";
import { RoutedMoE, routedMoeForward, type ForwardOptions, type MoeOutput, type RoutedMoeWeights } from "./routed-moe.js";
import { layerParamShapes, sharedMlpBlock } from "./routed-and-shared-moe.js";
import { mlpForward, type MlpKernels } from "./shared-mlp.js";
import { checkFinite } from "./finite.js";
import { weightEstimate } from "./memory-estimate.js";
import { checkMemory } from "../core/memory.js";

/** All weights of a GatedSharedMoE (W: see ExpertWeights). */
export interface GatedSharedMoeWeights<W extends ExpertWeight = Tensor> {
  routed: RoutedMoeWeights<W>;
  /** the shared MLP's kernels, MlpBlock paths */
  shared: MlpKernels;
  /** shared_expert_gate/kernel [D,1] */
  gateKernel: Tensor;
}

export interface GatedSharedMoeOutput extends MoeOutput {
  routedOutput: Tensor;
  /** the shared MLP's output before the gate */
  sharedOutput: Tensor;
  /** sigmoid(x·w_g) [B,S,1] */
  sharedGate: Tensor;
}

/** The gated shared block as a pure function of the config, the weights and the input [B,S,D]. */
export function gatedSharedMoeForward(
  cfg: MoeConfig,
  w: GatedSharedMoeWeights<ExpertWeight>,
  inputs_BSD: Tensor,
  opts: ForwardOptions & { dropoutKey?: Key } = {},
): GatedSharedMoeOutput {
  checkOptionKeys(
    w,
    optionKeys<GatedSharedMoeWeights>({ routed: true, shared: true, gateKernel: true }),
    "GatedSharedMoE weights",
    "field",
  );
  const D = cfg.expertInputDim;
  if (w.gateKernel.ndim !== 2 || w.gateKernel.shape[0] !== D || w.gateKernel.shape[1] !== 1) {
    throw new ShapeError(`[GatedSharedMoE] shared_expert_gate/kernel has shape ${fmt(w.gateKernel.shape)}, expected [${D},1]`);
  }
  if (opts.checkFinite === true) checkFinite({ shared_expert: w.shared, shared_expert_gate: w.gateKernel }, "GatedSharedMoE");
  const r = routedMoeForward(cfg, w.routed, inputs_BSD, opts);
  const sharedOutput = mlpForward(cfg, w.shared, inputs_BSD, opts.dropoutKey);
  const x = cast(inputs_BSD, cfg.dtype);
  const sharedGate = sigmoid(quantizedEinsum("BSD,DO->BSO", x, cast(w.gateKernel, cfg.dtype), denseQuant(cfg)));
  const output = add(r.output, mul(sharedGate, sharedOutput));
  if (opts.checkFinite === true) checkFinite(output, "GatedSharedMoE output");
  return { ...r, output, routedOutput: r.output, sharedOutput, sharedGate };
}

export interface GatedSharedMoeOptions {
  /** hidden width of the shared MLP (Qwen2-MoE: shared_expert_intermediate_size); default moe_mlp_dim */
  sharedDim?: number;
  key?: Key;
}

/**
 * Routed experts plus a sigmoid-gated shared MLP (Qwen2-MoE, Qwen3-Next). Parameter paths, as in MaxText's
 * Qwen3NextSparseMoeBlock: "routed_experts/<RoutedMoE path>", "shared_expert/<MlpBlock path>",
 * "shared_expert_gate/kernel" [D,1].
 */
export class GatedSharedMoE extends Module {
  readonly config: MoeConfig;
  readonly sharedDim: number;
  readonly routedExperts: RoutedMoE;
  readonly sharedExpert: MlpBlock;
  sharedExpertGate: Tensor;

  constructor(config: MoeConfig, opts: GatedSharedMoeOptions = {}) {
    super();
    checkIsConfig(config, "GatedSharedMoE");
    checkOptionKeys(opts, optionKeys<GatedSharedMoeOptions>({ sharedDim: true, key: true }), "GatedSharedMoE");
    this.config = config;
    this.sharedDim = opts.sharedDim ?? config.moeMlpDim;
    const shapes = [...layerParamShapes(config, true, this.sharedDim), [config.expertInputDim, 1]];
    checkMemory("GatedSharedMoE", weightEstimate(shapes, config.weightDtype));
    if (opts.key !== undefined) checkKey(opts.key, "GatedSharedMoE");
    const key = opts.key ?? prngKey(0);
    this.routedExperts = new RoutedMoE(config, { intermediateDim: config.moeMlpDim, key: foldIn(key, 0) });
    this.sharedExpert = sharedMlpBlock(config, this.sharedDim, foldIn(key, 1));
    this.sharedExpertGate = defaultKernelInit(foldIn(key, 2), [config.expertInputDim, 1], config.weightDtype, [0], [1]);
  }

  parameters(): [string, Tensor][] {
    return [
      ...this.routedExperts.parameters().map(([p, t]): [string, Tensor] => [`routed_experts/${p}`, t]),
      ...this.sharedExpert.parameters().map(([p, t]): [string, Tensor] => [`shared_expert/${p}`, t]),
      ["shared_expert_gate/kernel", this.sharedExpertGate],
    ];
  }

  protected setParameters(params: Params): void {
    const routed: Params = {};
    const shared: Params = {};
    for (const [p, t] of Object.entries(params)) {
      if (p.startsWith("routed_experts/")) routed[p.slice("routed_experts/".length)] = t;
      else if (p.startsWith("shared_expert/")) shared[p.slice("shared_expert/".length)] = t;
      else this.sharedExpertGate = t;
    }
    this.routedExperts.loadParameters(routed);
    this.sharedExpert.loadParameters(shared);
  }

  weights(): GatedSharedMoeWeights {
    return { routed: this.routedExperts.weights, shared: Object.fromEntries(this.sharedExpert.kernels), gateKernel: this.sharedExpertGate };
  }

  forward(inputs_BSD: Tensor, opts: ForwardOptions & { dropoutKey?: Key } = {}): GatedSharedMoeOutput {
    return gatedSharedMoeForward(this.config, this.weights(), inputs_BSD, opts);
  }
}
