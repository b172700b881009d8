// One MoE layer read from a checkpoint: its module kind, MaxText config keys, parameters by module path,
// and how to run it. Shared by the Hugging Face and MaxText layouts.
// Legend: B batch, S sequence, D model dim, H expert hidden, Hs shared hidden, E experts, K experts per token.
import { MoeError, ShapeError, UnsupportedError } from "../core/errors.js";
import { fmt, shapesEqual } from "../core/shape.js";
import { optionKeys } from "../core/suggest.js";
import type { DType } from "../core/dtype.js";
import type { Tensor } from "../core/tensor.js";
import type { StorageDType, TensorInfo, ReadOptions } from "../io/index.js";
import { moeConfig, type MoeConfig } from "../moe/config.js";
import {
  routedMoeForward,
  routedMoeParamShapes,
  routedWeightsFromPaths,
  type ForwardOptions,
  type MoeOutput,
  type RoutedMoeWeights,
} from "../moe/routed-moe.js";
import type { ExpertWeight } from "../moe/experts.js";
import { sharedExpertDim } from "../moe/routed-and-shared-moe.js";
import { gatedSharedMoeForward } from "../moe/gated-shared-moe.js";
import { mlpKernelPaths, type MlpKernels } from "../moe/shared-mlp.js";
import { routedAndSharedMoeForward } from "../moe/routed-and-shared-moe.js";
import type { Key } from "../nn/random.js";
import type { QuantizedWeight } from "../ops/quantized-weight.js";

/** Which module holds the layer: RoutedMoE, RoutedAndSharedMoE, or GatedSharedMoE (sigmoid-gated shared MLP). */
export type MoeModuleKind = "routed" | "routed_and_shared" | "gated_shared";

export const MODULE_KINDS: readonly MoeModuleKind[] = ["routed", "routed_and_shared", "gated_shared"];

/** Module path prefix of the routed experts inside each module kind. */
export const ROUTED_PREFIX: Record<MoeModuleKind, string> = {
  routed: "",
  routed_and_shared: "MoeBlock_0/",
  gated_shared: "routed_experts/",
};

/** Module path prefix of the shared MLP (none for routed). */
export const SHARED_PREFIX: Record<MoeModuleKind, string> = {
  routed: "",
  routed_and_shared: "shared_experts/",
  gated_shared: "shared_expert/",
};

export const SHARED_GATE_PATH = "shared_expert_gate/kernel";

/** A checkpoint whose contents moekit cannot read as asked. Message: `[checkpoint] source: problem`. */
export class CheckpointLayoutError extends MoeError {
  override name = "CheckpointLayoutError";
  constructor(
    readonly source: string,
    readonly problem: string,
  ) {
    super(`[checkpoint] ${source}: ${problem}`);
  }
}

/** A model (or one of its settings) whose MoE layer moekit cannot reproduce exactly; refused, never approximated. */
export class UnsupportedModelError extends UnsupportedError {
  override name = "UnsupportedModelError";
  constructor(
    readonly model: string,
    readonly problem: string,
  ) {
    super(`[model] ${model}: ${problem}`);
  }
}

/** Where the layer came from when it was read from a Hugging Face checkpoint (kept so it can be written back). */
export interface HfProvenance {
  family: string;
  /** the full config.json object */
  config: Record<string, unknown>;
  /** tensor name prefix of the decoder layer, e.g. "model.layers.3" */
  layerPrefix: string;
  /** "legacy" = one tensor per expert, "fused" = transformers v5 gate_up_proj/down_proj */
  expertLayout?: "legacy" | "fused";
}

/** One MoE layer with its parameters in moekit's module layout. */
export interface MoeLayer {
  module: MoeModuleKind;
  /** MaxText keys describing the architecture (what gets saved); runtime overrides are not included */
  keys: Record<string, unknown>;
  /** validated config: keys plus the overrides given when reading */
  config: MoeConfig;
  /** the overrides given when reading (kept by quantizeMoeLayer) */
  overrides?: Record<string, unknown>;
  /** decoder layer index (0-based, as the checkpoint counts) */
  layer: number;
  /** hidden width of the shared MLP (0 for routed) */
  sharedDim: number;
  /** MaxText first_num_dense_layers (DeepSeek), used for MaxText parameter names */
  firstDenseLayers: number;
  /** parameters by module path ("gate/kernel", "MoeBlock_0/wi_0", "shared_expert_gate/kernel", ...) */
  params: Record<string, Tensor>;
  /** serve mode: routed expert weights held quantized, by module path (absent from params) */
  quantized?: Record<string, QuantizedWeight>;
  /** storage dtype each parameter had on disk (kept when saving, so round trips are bit-exact) */
  storage: Record<string, StorageDType>;
  hf?: HfProvenance;
  /** what the mapping had to assume or could not check statically */
  caveats: string[];
  /** data-dependent conditions checked on every forward (see checkRoutingGuards) */
  guards: RoutingGuard[];
}

/** group_zero_fill: HF (DeepSeek-V2, and V3 before transformers 5) fills experts outside the chosen groups with 0, moekit with -inf. */
export type RoutingGuard = "group_zero_fill";

/** Read access to a set of tensors (SafetensorsCheckpoint and SafetensorsFile satisfy it). */
export interface TensorSource {
  keys(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  get(name: string, options?: ReadOptions): Tensor;
  /** dst.length bytes of a tensor's data from byte `start` (optional: quantized codes are then read in parts) */
  readBytes?(name: string, start: number, dst: Uint8Array): void;
  close(): void;
}

export interface LayerReadOptions {
  /** MaxText keys applied on top of the checkpoint's (e.g. {dtype: "float64", weight_dtype: "float64"}) */
  overrides?: Record<string, unknown>;
  /** convert every parameter to this dtype on load (default: keep the stored precision) */
  dtype?: DType;
  /** progress messages (e.g. to stderr) */
  onProgress?: (message: string) => void;
  /** read tensors from here instead of opening the path (tests use it to count reads) */
  source?: TensorSource;
}

export const LAYER_READ_OPTIONS = optionKeys<LayerReadOptions>({ overrides: true, dtype: true, onProgress: true, source: true });

/** Expected shape of every parameter of a module kind, by module path. */
export function expectedParamShapes(module: MoeModuleKind, cfg: MoeConfig, sharedDim: number): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  const routed = routedMoeParamShapes(cfg, cfg.moeMlpDim);
  for (const [p, s] of Object.entries(routed)) out[ROUTED_PREFIX[module] + p] = s;
  if (module === "routed") return out;
  const D = cfg.expertInputDim;
  const paths = mlpKernelPaths(cfg.mlpActivations.length);
  for (const p of paths) out[SHARED_PREFIX[module] + p] = p === "wo/kernel" ? [sharedDim, D] : [D, sharedDim];
  if (module === "gated_shared") out[SHARED_GATE_PATH] = [D, 1];
  return out;
}

/** Shared width a module kind implies for a config when none is stored (RoutedAndSharedMoE: shared_experts × moe_mlp_dim). */
export function defaultSharedDim(module: MoeModuleKind, cfg: MoeConfig): number {
  if (module === "routed") return 0;
  if (module === "routed_and_shared") return sharedExpertDim(cfg);
  return cfg.moeMlpDim;
}

/** Builds the layer's validated config and checks every parameter is present with its expected shape. */
export function makeLayer(fields: Omit<MoeLayer, "config">, overrides: Record<string, unknown> = {}, source = "layer"): MoeLayer {
  const all = { ...fields.overrides, ...overrides };
  const config = moeConfig({ ...fields.keys, ...all });
  if (fields.module === "routed_and_shared" && fields.sharedDim !== sharedExpertDim(config)) {
    throw new CheckpointLayoutError(
      source,
      `shared width ${fields.sharedDim} is not shared_experts × moe_mlp_dim = ${sharedExpertDim(config)}`,
    );
  }
  const layer: MoeLayer = { ...fields, config, ...(Object.keys(all).length > 0 ? { overrides: all } : {}) };
  validateLayer(layer, source);
  return layer;
}

export function validateLayer(layer: MoeLayer, source = "layer"): void {
  const shapes = expectedParamShapes(layer.module, layer.config, layer.sharedDim);
  for (const [path, shape] of Object.entries(shapes)) {
    const q = layer.quantized?.[path];
    // a quantized 2-D kernel is held as one group: [1, k, n]
    const got = layer.params[path]?.shape ?? (q !== undefined && shape.length === 2 && q.shape[0] === 1 ? q.shape.slice(1) : q?.shape);
    if (got === undefined) throw new CheckpointLayoutError(source, `missing parameter ${path} ${fmt(shape)}`);
    if (!shapesEqual(got, shape))
      throw new CheckpointLayoutError(source, `parameter ${path} has shape ${fmt(got)}, expected ${fmt(shape)}`);
  }
  for (const path of [...Object.keys(layer.params), ...Object.keys(layer.quantized ?? {})]) {
    if (!(path in shapes)) throw new CheckpointLayoutError(source, `unexpected parameter ${path} for a ${layer.module} layer`);
  }
  checkServedBits(layer, source);
}

/**
 * Experts held as int8 / int4 codes compute with the weight bits they were stored with (intmp's w_bits, or MaxText's
 * int8 for int8 codes): an override of quantization or quant_cfg would quantize the gate to other bits than the experts.
 */
function checkServedBits(layer: MoeLayer, source: string): void {
  const cfg = layer.config;
  const wBits = cfg.quantCfg?.__default__?.w_bits;
  for (const format of new Set(Object.values(layer.quantized ?? {}).map((q) => q.format))) {
    if (format !== "int8" && format !== "int4") continue;
    const bits = format === "int8" ? 8 : 4;
    if ((cfg.quantization === "intmp" && wBits === bits) || (cfg.quantization === "int8" && bits === 8)) continue;
    const now = cfg.quantization === "intmp" ? `intmp with w_bits ${String(wBits)}` : `quantization=${JSON.stringify(cfg.quantization)}`;
    throw new CheckpointLayoutError(
      source,
      `the experts are stored as ${format}, but the config computes ${now}: keep the stored quantization keys`,
    );
  }
}

/** The routed experts' weights of a layer (paths under `prefix`), float or held quantized. */
export function routedWeightsOf(
  params: Record<string, Tensor>,
  prefix: string,
  quantized: Record<string, QuantizedWeight> = {},
): RoutedMoeWeights<ExpertWeight> {
  return routedWeightsFromPaths((p) => quantized[prefix + p] ?? params[prefix + p], `layer ${prefix || "(routed)"}`);
}

function sharedKernelsOf(layer: MoeLayer, prefix: string): MlpKernels {
  const out: MlpKernels = {};
  for (const [p, t] of [...Object.entries(layer.params), ...Object.entries(layer.quantized ?? {})])
    if (p.startsWith(prefix)) out[p.slice(prefix.length)] = t;
  return out;
}

/** Layer output plus the routed and shared parts (when the module has a shared MLP). */
export interface LayerOutput extends MoeOutput {
  routedOutput?: Tensor;
  sharedOutput?: Tensor;
  /** sigmoid gate of the shared MLP [B,S,1] (gated_shared) */
  sharedGate?: Tensor;
}

/**
 * Runs the layer on x [B,S,D]: RoutedMoE, RoutedAndSharedMoE (routed + shared) or GatedSharedMoE, as pure
 * functions of the loaded parameters (no module is built, so no weights are initialised). Data-dependent
 * conditions under which the source model would compute something else are checked (checkRoutingGuards).
 */
export function moeLayerForward(layer: MoeLayer, x_BSD: Tensor, opts: ForwardOptions & { dropoutKey?: Key } = {}): LayerOutput {
  const cfg = layer.config;
  const routed = routedWeightsOf(layer.params, ROUTED_PREFIX[layer.module], layer.quantized);
  let out: LayerOutput;
  if (layer.module === "routed") {
    out = routedMoeForward(cfg, routed, x_BSD, opts);
  } else if (layer.module === "routed_and_shared") {
    out = routedAndSharedMoeForward(cfg, { routed, shared: sharedKernelsOf(layer, SHARED_PREFIX.routed_and_shared) }, x_BSD, opts);
  } else {
    const gateKernel = layer.params[SHARED_GATE_PATH];
    if (gateKernel === undefined) throw new ShapeError(`[layer] missing parameter ${SHARED_GATE_PATH}`);
    out = gatedSharedMoeForward(cfg, { routed, shared: sharedKernelsOf(layer, SHARED_PREFIX.gated_shared), gateKernel }, x_BSD, opts);
  }
  checkRoutingGuards(layer, out);
  return out;
}

/**
 * Refuses outputs that the source model would not have computed. group_zero_fill: with group-limited routing,
 * Hugging Face's DeepSeek-V2 (and DeepSeek-V3 before transformers 5) fills the scores of experts outside the chosen
 * groups with 0.0 before its top-k, MaxText (and DeepSeek's reference) with -inf; the two pick the same experts
 * exactly when every selected expert's (biased) score is > 0.
 */
export function checkRoutingGuards(layer: MoeLayer, out: MoeOutput): void {
  if (!layer.guards.includes("group_zero_fill")) return;
  const cfg = layer.config;
  if (cfg.nRoutingGroups <= 1 || cfg.topkRoutingGroup >= cfg.nRoutingGroups) return;
  const E = cfg.numExperts;
  const K = cfg.numExpertsPerTok;
  const logits = out.gateLogits_BSE.data;
  const idx = out.topKIndices_BSK.data;
  const T = idx.length / K;
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < K; j++) {
      const e = idx[t * K + j]!;
      const s = logits[t * E + e]!;
      if (!(s > 0)) {
        const family = layer.hf?.family ?? "DeepSeek";
        throw new UnsupportedModelError(
          family,
          `token ${t} selects expert ${e} with score ${s} <= 0; Hugging Face's ${family} fills experts outside the top ${cfg.topkRoutingGroup} groups with 0.0 (moekit with -inf), so it may route this token differently: refused rather than approximated`,
        );
      }
    }
  }
}
