// Legend: B batch, S sequence, D model dim, H expert hidden, E experts, K experts per token.
import { tensorArg } from "../ops/args.js";
import { MoeError, ShapeError, UnsupportedError } from "../core/errors.js";
import { fmt, shapesEqual } from "../core/shape.js";
import { checkOptionKeys, optionKeys } from "../core/suggest.js";
import { full, zeros, type Tensor } from "../core/tensor.js";
import { cast, mul } from "../ops/elementwise.js";
import { reshape } from "../ops/movement.js";
import { Module, type Params } from "../nn/module.js";
import { defaultKernelInit, type NdInitializer } from "../nn/init.js";
import { checkKey, prngKey, split, type Key } from "../nn/random.js";
import { checkIsConfig, toMaxTextKeys, type MoeConfig } from "./config.js";
import { agreeAcrossRanks } from "../parallel/agree.js";
import {
  applyFfnActivation,
  denseMatmul,
  sparseMatmul,
  transformBias,
  type AnyExpertWeights,
  type ExpertWeight,
  type ExpertWeights,
  type RoutingOutputs,
} from "./experts.js";
import { isQuantizedWeight, quantizedWeightSlice } from "../ops/quantized-weight.js";
import { deepseekRouting, deepseekScaleWeights, expertGroupMask, getTopk } from "./routing.js";
import { localPermute, permute, unpermute, type PermuteOptions } from "./permute.js";
import { generateMasks, generateMasksSubgroup, getContextPartitionAndSubSeq, reshapeAndUpdateWeights } from "./dispatch.js";
import { loadBalanceLoss, shouldUpdateLoadBalance } from "./load-balance.js";
import { gateDtype, gateLogit } from "./gate-logit.js";
import { checkFinite, checkGateLogits } from "./finite.js";
import { forwardEstimate, weightEstimate } from "./memory-estimate.js";
import { checkMemory } from "../core/memory.js";
import type { RoutingRng } from "./routing.js";
import { denseMatmulExpertParallel } from "./dense-expert-parallel.js";
import { checkExpertShapes, checkRoutedFields, REQUIRED_PATHS, ROUTED_PARAM_FIELDS } from "./routed-weights.js";
import type { Group } from "../parallel/group.js";
import type { Mesh } from "../parallel/mesh.js";
import { checkParallelSizes, checkShardShapes, gatherFsdp, meshFfn, moeAxes, matmulMesh } from "./tensor-parallel.js";
import {
  EP_PATHS,
  expertShard,
  getAllToAllParams,
  getRaggedBufferSize,
  sparseMatmulExpertParallel,
  type EpPath,
  type EpStats,
} from "./expert-parallel.js";

/** All weights of a RoutedMoE, MaxText names camelCased (gate/kernel -> gateKernel); W: see ExpertWeights. */
export interface RoutedMoeWeights<W extends ExpertWeight = Tensor> extends ExpertWeights<W> {
  gateKernel: Tensor;
  gateBias?: Tensor | undefined;
  perExpertScale?: Tensor | undefined;
}

/** Layer output plus what routing decided (for statistics, tests and the golden checker). */
export interface MoeOutput extends RoutingOutputs {
  output: Tensor;
  gateLogits_BSE: Tensor;
  preBiasLogits_BSE: Tensor | undefined;
  /** tokens routed to each expert (sparse path) */
  groupSizes_E?: Tensor;
}

export interface ForwardOptions {
  /** a separate routing input (MaxText gate_inputs) */
  gateInputs?: Tensor;
  /** PRNG key (or injected draw) for use_random_routing */
  rng?: RoutingRng;
  /** int8 training: the key of the stochastically rounded 8-bit gradient products (without it: straight-through) */
  quantKey?: Key;
  /**
   * Scan the input, gate_inputs and every weight before the forward, and the output after it, for NaN and ±Inf:
   * a NonFiniteError names the tensor and its first bad element. Off by default (it reads every element).
   */
  checkFinite?: boolean;
}

/**
 * The experts' effective weights: per_expert_scale (Gemma4) folded into wo. Other weights keep their
 * storage dtype; the expert compute casts them to the layer dtype (or a fused kernel reads them as stored).
 */
export function effectiveWeights(cfg: MoeConfig, w: RoutedMoeWeights<ExpertWeight>): AnyExpertWeights {
  if (w.perExpertScale === undefined) return w;
  if (isQuantizedWeight(w.wo)) throw new UnsupportedError("[RoutedMoE] per_expert_scale with a quantized wo is not supported");
  const dt = cfg.dtype;
  return { ...w, wo: mul(cast(w.wo, dt), reshape(cast(w.perExpertScale, dt), [-1, 1, 1])) };
}

/** Gate logits for the layer input (MaxText RoutedMoE.__call__ up to the expert dispatch). */
export function routedGate(
  cfg: MoeConfig,
  w: RoutedMoeWeights<ExpertWeight>,
  inputs_BSD: Tensor,
  gateInputs?: Tensor,
  quantKey?: Key,
): { x: Tensor; logits: Tensor; pre: Tensor | undefined } {
  const x = cast(inputs_BSD, cfg.dtype);
  const routingInputs = gateInputs === undefined ? x : cast(gateInputs, gateDtype(cfg));
  const { logits_BSE, preBiasLogits_BSE } = gateLogit(cfg, w.gateKernel, w.gateBias, routingInputs, quantKey);
  checkGateLogits(logits_BSE, {
    inputName: gateInputs === undefined ? "the layer input" : "gate_inputs",
    inputs_BSD: routingInputs,
    kernel_DE: w.gateKernel,
    bias_E: cfg.routedBias ? w.gateBias : undefined,
  });
  return { x, logits: logits_BSE, pre: preBiasLogits_BSE };
}

// the shared layers hand their options (with the shared MLP's dropoutKey) down to the routed forward
const FORWARD_OPTIONS = optionKeys<ForwardOptions & { dropoutKey?: Key }>({
  gateInputs: true,
  rng: true,
  quantKey: true,
  checkFinite: true,
  dropoutKey: true,
});

/** What both forwards check first: a config from moeConfig, their options' names, the weights' fields (E/`expertRanks` experts). */
function checkForwardArgs(cfg: MoeConfig, w: RoutedMoeWeights<ExpertWeight>, opts: ForwardOptions, where: string, expertRanks = 1): void {
  checkIsConfig(cfg, where);
  checkOptionKeys(opts, FORWARD_OPTIONS, "RoutedMoE.forward");
  if (opts.quantKey !== undefined) checkKey(opts.quantKey, "RoutedMoE.forward", "quantKey");
  if (opts.rng !== undefined && !(typeof opts.rng === "object" && opts.rng !== null && "topKIndices" in opts.rng))
    checkKey(opts.rng, "RoutedMoE.forward", "rng");
  checkRoutedFields(cfg, w, "RoutedMoE", cfg.numExperts / expertRanks);
}

/** The layer input is [B,S,D] for the experts' D; gate_inputs, when given, [B,S,·] for the gate kernel's. */
function checkInputs(inputs_BSD: Tensor, D: number, gateKernel: Tensor, gateInputs: Tensor | undefined): void {
  tensorArg(inputs_BSD, "RoutedMoE", "the input");
  if (gateInputs !== undefined) tensorArg(gateInputs, "RoutedMoE", "gateInputs");
  if (inputs_BSD.ndim !== 3 || inputs_BSD.shape[2] !== D)
    throw new ShapeError(`[RoutedMoE] input ${fmt(inputs_BSD.shape)} must be [B,S,${D}] (the experts' D)`);
  if (gateInputs === undefined) return;
  const [B, S] = inputs_BSD.shape;
  if (gateInputs.ndim !== 3 || gateInputs.shape[0] !== B || gateInputs.shape[1] !== S || gateInputs.shape[2] !== gateKernel.shape[0])
    throw new ShapeError(
      `[RoutedMoE] gate_inputs ${fmt(gateInputs.shape)} must be [${B},${S},${gateKernel.shape[0]}] (the gate kernel's D)`,
    );
}

/** RoutedMoE.__call__ as a pure function of the config, the weights and the input [B,S,D]. */
export function routedMoeForward(
  cfg: MoeConfig,
  w: RoutedMoeWeights<ExpertWeight>,
  inputs_BSD: Tensor,
  opts: ForwardOptions = {},
): MoeOutput {
  checkForwardArgs(cfg, w, opts, "routedMoeForward");
  const D = checkExpertShapes(cfg, w, "RoutedMoE", opts.gateInputs === undefined);
  checkInputs(inputs_BSD, D, w.gateKernel, opts.gateInputs);
  const [B, S] = inputs_BSD.shape as [number, number, number];
  checkMemory("RoutedMoE.forward", forwardEstimate(cfg, B, S));
  if (opts.checkFinite === true) checkFinite({ input: inputs_BSD, gate_inputs: opts.gateInputs, weights: w }, "RoutedMoE");
  const { x, logits, pre } = routedGate(cfg, w, inputs_BSD, opts.gateInputs, opts.quantKey);
  const ew = effectiveWeights(cfg, w);
  const r = cfg.sparseMatmul
    ? sparseMatmul(cfg, x, logits, pre, ew, opts.rng)
    : denseMatmul(cfg, x, logits, pre, ew, opts.rng, opts.quantKey);
  if (opts.checkFinite === true) checkFinite(r.output, "RoutedMoE output");
  return { ...r, gateLogits_BSE: logits, preBiasLogits_BSE: pre };
}

export interface RoutedMoeOptions {
  /** hidden width of each expert (MaxText intermediate_dim); default moe_mlp_dim */
  intermediateDim?: number;
  /** the initialisers' PRNG key; default prngKey(0), so layers built without one hold the same weights */
  key?: Key;
  kernelInit?: NdInitializer;
}

/** Expected shapes of every parameter, by MaxText path. */
export function routedMoeParamShapes(cfg: MoeConfig, H: number): Record<string, number[]> {
  const D = cfg.expertInputDim;
  const E = cfg.numExperts;
  const shapes: Record<string, number[]> = { "gate/kernel": [D, E] };
  if (cfg.routedBias) shapes["gate/bias"] = [E];
  Object.assign(shapes, { wi_0: [E, D, H], wi_1: [E, D, H], wo: [E, H, D] });
  if (cfg.mlpBias) Object.assign(shapes, { wi_0_bias: [E, H], wi_1_bias: [E, H], wo_bias: [E, D] });
  if (cfg.decoderBlock === "gemma4") shapes["per_expert_scale"] = [E];
  return shapes;
}

export { ROUTED_PARAM_FIELDS };

/**
 * RoutedMoeWeights from parameters looked up by MaxText path (`get("wi_0")`); the optional ones may be
 * absent, a missing required one is an error naming `where` and the path.
 */
export function routedWeightsFromPaths<W extends ExpertWeight = Tensor>(
  get: (path: string) => W | undefined,
  where: string,
): RoutedMoeWeights<W> {
  const w: Partial<Record<keyof RoutedMoeWeights, W>> = {};
  for (const [path, field] of Object.entries(ROUTED_PARAM_FIELDS)) {
    const t = get(path);
    if (t !== undefined) w[field] = t;
    else if (REQUIRED_PATHS.has(path)) throw new ShapeError(`[${where}] missing parameter ${path}`);
  }
  return w as unknown as RoutedMoeWeights<W>;
}

/**
 * MaxText's RoutedMoE: gate, routing, and the experts (sparse grouped matmul or dense einsums).
 *
 * @example
 * const cfg = moeConfig({ num_experts: 8, num_experts_per_tok: 2, emb_dim: 16, moe_mlp_dim: 32, dtype: "float32" });
 * const moe = new RoutedMoE(cfg, { key: prngKey(42) });
 * const { output, lbLoss } = moe.forward(x_BSD);
 */
export class RoutedMoE extends Module {
  readonly config: MoeConfig;
  readonly intermediateDim: number;
  weights: RoutedMoeWeights;

  constructor(config: MoeConfig, opts: RoutedMoeOptions = {}) {
    super();
    checkIsConfig(config, "RoutedMoE");
    checkOptionKeys(opts, optionKeys<RoutedMoeOptions>({ intermediateDim: true, key: true, kernelInit: true }), "RoutedMoE");
    if (opts.key !== undefined) checkKey(opts.key, "RoutedMoE");
    this.config = config;
    this.intermediateDim = opts.intermediateDim ?? config.moeMlpDim;
    const init = opts.kernelInit ?? defaultKernelInit;
    const shapes = routedMoeParamShapes(config, this.intermediateDim);
    checkMemory("RoutedMoE", weightEstimate(Object.values(shapes), config.weightDtype));
    const keys = split(opts.key ?? prngKey(0), Object.keys(shapes).length);
    const w: Partial<Record<keyof RoutedMoeWeights, Tensor>> = {};
    const wdt = config.weightDtype;
    Object.entries(shapes).forEach(([path, shape], i) => {
      const k = keys[i]!;
      let t: Tensor;
      if (path === "gate/kernel") t = init(k, shape, wdt, [0], [1]);
      // MaxText calls the 3-D expert initialiser with in_axis=[0], out_axis=[1] (fan_in = E·H or E·D)
      else if (path === "wi_0" || path === "wi_1" || path === "wo") t = init(k, shape, wdt, [0], [1]);
      else if (path === "per_expert_scale") t = full(shape, 1, wdt);
      else t = full(shape, 0, wdt);
      w[ROUTED_PARAM_FIELDS[path]!] = t;
    });
    this.weights = w as RoutedMoeWeights;
  }

  parameters(): [string, Tensor][] {
    return Object.entries(ROUTED_PARAM_FIELDS)
      .filter(([, k]) => this.weights[k] !== undefined)
      .map(([path, k]) => [path, this.weights[k]!]);
  }

  protected setParameters(params: Params): void {
    for (const [path, t] of Object.entries(params)) this.weights = { ...this.weights, [ROUTED_PARAM_FIELDS[path]!]: t };
  }

  /** Check every expected parameter is present with its shape. */
  validateWeights(): void {
    const shapes = routedMoeParamShapes(this.config, this.intermediateDim);
    for (const [path, shape] of Object.entries(shapes)) {
      const t = this.weights[ROUTED_PARAM_FIELDS[path]!];
      if (t === undefined) throw new ShapeError(`[RoutedMoE] missing parameter ${path}`);
      if (!shapesEqual(t.shape, shape)) throw new ShapeError(`[RoutedMoE] ${path} has shape ${fmt(t.shape)}, expected ${fmt(shape)}`);
    }
  }

  /** MaxText __call__: returns the output and the routing side outputs. */
  forward(inputs_BSD: Tensor, opts: ForwardOptions = {}): MoeOutput {
    return routedMoeForward(this.config, this.weights, inputs_BSD, opts);
  }

  // ---- the seed's methods, same names (camelCased), argument order and meaning ----

  getTopk(gateLogits: Tensor, preBiasLogits: Tensor | undefined, rngs?: RoutingRng): [Tensor, Tensor] {
    return getTopk(this.config, gateLogits, preBiasLogits, rngs);
  }

  deepseekScaleWeights(weights: Tensor): Tensor {
    return deepseekScaleWeights(this.config, weights);
  }

  expertGroupMask(gateLogits: Tensor): Tensor {
    return expertGroupMask(this.config, gateLogits);
  }

  deepseekRouting(gateLogits: Tensor, preBiasLogits: Tensor): [Tensor, Tensor] {
    return deepseekRouting(this.config, gateLogits, preBiasLogits);
  }

  applyFfnActivation(layerW0: Tensor, layerW1: Tensor): Tensor {
    return applyFfnActivation(this.config, layerW0, layerW1);
  }

  /** Returns the seed's 7-tuple (sortedInputs, sortedSelectedExperts, weights, groupSize, sortedExperts, lbLoss, biasUpdates). */
  permute(
    inputs: Tensor,
    gateLogits: Tensor,
    preBiasLogits: Tensor | undefined,
    useCustomSortVjp = true,
    rngs?: RoutingRng,
    rollToExpertId?: number,
  ) {
    const opts: PermuteOptions = {
      useCustomSortVjp,
      ...(rngs === undefined ? {} : { rng: rngs }),
      ...(rollToExpertId === undefined ? {} : { rollToExpertId }),
    };
    return permute(this.config, inputs, gateLogits, preBiasLogits, opts).slice(0, 7) as [
      Tensor,
      Tensor,
      Tensor,
      Tensor,
      Tensor,
      Tensor | undefined,
      Tensor | undefined,
    ];
  }

  unpermute(
    intermediate: Tensor,
    sortedSelectedExperts: Tensor,
    weights: Tensor,
    batchSize: number,
    sequenceLength: number,
    useCustomSortVjp = true,
  ): Tensor {
    return unpermute(this.config, intermediate, sortedSelectedExperts, weights, batchSize, sequenceLength, useCustomSortVjp);
  }

  static localPermute = localPermute;
  static getAllToAllParams = getAllToAllParams;
  static getRaggedBufferSize = getRaggedBufferSize;

  transformBias(expertsIndex: Tensor, w0Bias: Tensor, w1Bias: Tensor, woBias: Tensor): [Tensor, Tensor, Tensor] {
    return transformBias(expertsIndex, w0Bias, w1Bias, woBias);
  }

  /** Returns [output, lbLoss, biasUpdates]. */
  sparseMatmul(
    inputs: Tensor,
    gateLogits: Tensor,
    preBiasLogits: Tensor | undefined,
    w0: Tensor,
    w1: Tensor,
    wo: Tensor,
    w0Bias?: Tensor,
    w1Bias?: Tensor,
    woBias?: Tensor,
    rng?: RoutingRng,
  ): [Tensor, Tensor | undefined, Tensor | undefined] {
    const r = sparseMatmul(
      this.config,
      inputs,
      gateLogits,
      preBiasLogits,
      { wi0: w0, wi1: w1, wo, wi0Bias: w0Bias, wi1Bias: w1Bias, woBias },
      rng,
    );
    return [r.output, r.lbLoss, r.biasUpdates];
  }

  /** Returns [output, lbLoss, biasUpdates]. */
  denseMatmul(
    inputs: Tensor,
    gateLogits: Tensor,
    preBiasLogits: Tensor | undefined,
    w0: Tensor,
    w1: Tensor,
    wo: Tensor,
    w0Bias?: Tensor,
    w1Bias?: Tensor,
    woBias?: Tensor,
    rng?: RoutingRng,
  ): [Tensor, Tensor | undefined, Tensor | undefined] {
    const r = denseMatmul(
      this.config,
      inputs,
      gateLogits,
      preBiasLogits,
      { wi0: w0, wi1: w1, wo, wi0Bias: w0Bias, wi1Bias: w1Bias, woBias },
      rng,
    );
    return [r.output, r.lbLoss, r.biasUpdates];
  }

  reshapeAndUpdateWeights(weights: Tensor, indices: Tensor): Tensor {
    return reshapeAndUpdateWeights(this.config, weights, indices);
  }

  getContextPartitionAndSubSeq(seqLen: number): [number, number] {
    return getContextPartitionAndSubSeq(this.config, seqLen);
  }

  generateMasksSubgroup(topKIndices: Tensor, softmaxProbs: Tensor): [Tensor, Tensor] {
    return generateMasksSubgroup(this.config, topKIndices, softmaxProbs);
  }

  generateMasks(topKIndices: Tensor, softmaxProbs: Tensor): [Tensor, Tensor] {
    return generateMasks(this.config, topKIndices, softmaxProbs);
  }

  loadBalanceLoss(topKIndices: Tensor, logits: Tensor): Tensor {
    return loadBalanceLoss(this.config, topKIndices, logits);
  }

  shouldUpdateLoadBalance(): boolean {
    return shouldUpdateLoadBalance(this.config);
  }
}

/**
 * A 32-bit hash of a tensor's element bits (FNV-1a over 32-bit words): equal on ranks that hold the same values.
 * Past `most` words it hashes that many, evenly spaced, shifted by `call` so that successive calls cover every word
 * (a check per call, not a checksum: a difference in one word is seen within ⌈words / most⌉ calls).
 */
function fingerprint(t: Tensor, most = Infinity, call = 0): string {
  const d = t.data;
  const words =
    d.byteOffset % 4 === 0 && d.byteLength % 4 === 0
      ? new Uint32Array(d.buffer, d.byteOffset, d.byteLength / 4)
      : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  const step = words.length > most ? (words.length - 1) / (most - 1) : 1;
  const shift = call % Math.ceil(step);
  let h = 0x811c9dc5;
  for (let i = 0; i < Math.min(words.length, most); i++)
    h = Math.imul(h ^ words[Math.min(Math.round(i * step) + shift, words.length - 1)]!, 16777619);
  return (h >>> 0).toString(16);
}

/** Forwards run on each group: every rank counts its own calls, in step with the others (SPMD). */
const gateChecks = new WeakMap<object, number>();

/**
 * RoutedMoE.__call__ on one rank of a Group (expert parallelism) or of a Mesh (the expert, tensor,
 * tensor_transpose, fsdp and data axes: tensor-parallel.ts). `w` holds this rank's shard (shardWeights,
 * meshShardWeights) and `inputs_BSD` its batch slice (the batch is sharded over data × fsdp × expert, or
 * replicated when it has one row). The output is this rank's block: its batch slice and, with tensor or
 * tensor_transpose parallelism, its slice of the embedding dim. Gradients of replicated tensors (the gate, x
 * across the tensor axes) are this rank's part: their sum over the replicas is the gradient.
 */
export async function routedMoeForwardParallel(
  cfg: MoeConfig,
  group: Group | Mesh,
  path: EpPath,
  w: RoutedMoeWeights<ExpertWeight>,
  inputs_BSD: Tensor,
  opts: ForwardOptions = {},
): Promise<MoeOutput & { ep: EpStats }> {
  const axes = moeAxes(group);
  checkForwardArgs(cfg, w, opts, "routedMoeForwardParallel", axes.expert.size);
  tensorArg(inputs_BSD, "RoutedMoE", "the input");
  if (inputs_BSD.ndim !== 3) throw new ShapeError(`[RoutedMoE] input ${fmt(inputs_BSD.shape)} must be [B,S,D]`);
  const D = inputs_BSD.shape[2]!; // full width on every rank (gate_inputs may be another width)
  checkParallelSizes(cfg, axes.mesh, D);
  checkShardShapes(cfg, axes.mesh, D, w);
  if (!EP_PATHS.includes(path)) throw new MoeError(`[RoutedMoE] path ${JSON.stringify(path)} is not one of ${EP_PATHS.join(", ")}`);
  // every rank runs the same layer on the same mesh (a config differing on one rank gave each its own numbers,
  // without an error)
  const call = gateChecks.get(axes.mesh.group) ?? 0;
  gateChecks.set(axes.mesh.group, call + 1);
  await agreeAcrossRanks(axes.mesh.group, "the layer (config, path, mesh, input and gate)", {
    config: toMaxTextKeys(cfg),
    path,
    mesh: axes.mesh.toString(),
    input: { dtype: inputs_BSD.dtype, D, gate_inputs: opts.gateInputs?.shape.at(-1) ?? null },
    // the gate is replicated: ranks seeded or loaded apart routed the same token to different experts, silently
    gate: {
      kernel: fingerprint(w.gateKernel, 1 << 16, call),
      bias: w.gateBias === undefined ? null : fingerprint(w.gateBias, 1 << 16, call),
    },
  });
  // the dense path keeps its slice of the batch gathered over the expert axis, the ring reduce-scatters it, and the
  // replicated path takes the same rows everywhere: equal slices over the expert axis
  if (axes.expert.size > 1 && (path !== "batch_sharded" || !cfg.sparseMatmul))
    await agreeAcrossRanks(
      axes.expert,
      `the batch slices over the expert axis, which ${cfg.sparseMatmul ? `the ${path} path` : "the dense path"} needs equal`,
      {
        batch_rows: inputs_BSD.shape[0],
        sequence: inputs_BSD.shape[1],
        // the replicated path's rows themselves (different rows of the same shape summed into garbage, silently)
        ...(path === "batch_replicated" && cfg.sparseMatmul
          ? { rows: fingerprint(inputs_BSD), gate_inputs: opts.gateInputs === undefined ? null : fingerprint(opts.gateInputs) }
          : {}),
      },
    );
  const { x, logits, pre } = routedGate(cfg, w, inputs_BSD, opts.gateInputs, opts.quantKey);
  const ew = await gatherFsdp(axes, effectiveWeights(cfg, w));
  if (axes.expert.size === 1) {
    const r = await matmulMesh(cfg, axes, x, logits, pre, ew, opts.rng, opts.quantKey);
    const localGroupSizes = "groupSizes_E" in r ? r.groupSizes_E : zeros([0], "int32");
    return { ...r, gateLogits_BSE: logits, preBiasLogits_BSE: pre, ep: { path, localGroupSizes } };
  }
  const r = cfg.sparseMatmul
    ? await sparseMatmulExpertParallel(cfg, axes.expert, path, x, logits, pre, ew, opts.rng, meshFfn(cfg, axes, ew))
    : await denseMatmulExpertParallel(cfg, axes, path, x, logits, pre, ew, opts.rng, opts.quantKey);
  return { ...r, gateLogits_BSE: logits, preBiasLogits_BSE: pre };
}

/** This rank's view of the weights for expert parallelism: gate replicated, experts sliced [E/N, ...]. */
export function shardWeights<W extends ExpertWeight>(w: RoutedMoeWeights<W>, rank: number, size: number): RoutedMoeWeights<W> {
  if (!Number.isInteger(size) || size < 1 || !Number.isInteger(rank) || rank < 0 || rank >= size)
    throw new ShapeError(`[shardWeights] rank ${rank} of ${size}: needs 0 <= rank < size, integers`);
  if (w.wi0.shape[0]! % size !== 0)
    throw new ShapeError(
      `[shardWeights] ${w.wi0.shape[0]} experts do not split over ${size} ranks (num_experts must be a multiple of the expert axis)`,
    );
  const cut = (t: Tensor | undefined): Tensor | undefined => (t === undefined ? undefined : expertShard(t, rank, size));
  const e = w.wi0.shape[0]! / size;
  const cutW = (t: W): W => (isQuantizedWeight(t) ? quantizedWeightSlice(t, rank * e, (rank + 1) * e) : expertShard(t, rank, size)) as W;
  return {
    gateKernel: w.gateKernel,
    gateBias: w.gateBias,
    wi0: cutW(w.wi0),
    wi1: cutW(w.wi1),
    wo: cutW(w.wo),
    wi0Bias: cut(w.wi0Bias),
    wi1Bias: cut(w.wi1Bias),
    woBias: cut(w.woBias),
    perExpertScale: cut(w.perExpertScale),
  };
}
