// MaxText parameter names for one MoE layer, stored in safetensors.
//
// Convention (see docs/checkpoints.md): each parameter is a tensor named
//   <block prefix>/<module path>            e.g. decoder/layers_3/MoeBlock_0/wi_0
// where the block prefix is MaxText's unscanned decoder path of the layer's MoE block (SEMANTICS 2.14):
//   mixtral & others       decoder/layers_<N>/MoeBlock_0          (RoutedMoE)
//   gpt_oss                decoder/layers_<N>/GptOssMlp           (RoutedMoE)
//   qwen3_moe / gemma4     decoder/layers_<N>/moe_block
//   deepseek               decoder/moe_layers_<N - first_num_dense_layers>/DeepSeekMoeBlock_0   (RoutedAndSharedMoE)
//   llama4                 decoder/layers_<N>/Llama4MoEBlock_0    (RoutedAndSharedMoE)
//   gated shared (Qwen3-Next, Qwen2-MoE)   decoder/layers_<N>/mlp (routed_experts/, shared_expert/, shared_expert_gate/)
// and the module path is moekit's (= MaxText's) parameter path inside that block ("gate/kernel", "wi_0",
// "MoeBlock_0/wo", "shared_experts/wi_0/kernel", ...). Shapes are MaxText's: gate/kernel [D,E], wi_* [E,D,H],
// wo [E,H,D], shared kernels [D,Hs]/[Hs,D]. The file's metadata (single file: __metadata__; sharded: the
// index's "metadata") records the MaxText keys, the module kind and the layer, so the file is self-describing.
// Reading also accepts MaxText's own flattened names ("params-decoder-layers_3-MoeBlock_0-wi_0") and a
// leading "params/".
import fs from "node:fs";
import path from "node:path";
import type { Tensor } from "../core/tensor.js";
import { fmt, shapesEqual } from "../core/shape.js";
import { checkOptionKeys, optionKeys } from "../core/suggest.js";
import { SafetensorsCheckpoint, saveSafetensors, type StorageDType } from "../io/index.js";
import { moeConfig } from "../moe/config.js";
import {
  CheckpointLayoutError,
  MODULE_KINDS,
  defaultSharedDim,
  expectedParamShapes,
  makeLayer,
  type HfProvenance,
  LAYER_READ_OPTIONS,
  type LayerReadOptions,
  type MoeLayer,
  type MoeModuleKind,
  type RoutingGuard,
  type TensorSource,
} from "./layer.js";
import { writeCheckpointFolder, writeTensorFiles } from "./write-folder.js";
import { withDtype } from "./transforms.js";
import { checkLayerMemory } from "./layer-memory.js";
import { QUANT_META, parseLayerQuantization, quantizedTensorNames, quantizedTensors, readQuantizedWeights } from "./quantized-layer.js";

export const MAXTEXT_LAYER_FORMAT = "moekit.maxtext-moe-layer.v1";

/** Metadata keys of a MaxText-layout file. */
export const META = {
  format: "moekit.format",
  keys: "moekit.maxtext_config",
  module: "moekit.module",
  layer: "moekit.layer",
  prefix: "moekit.prefix",
  sharedDim: "moekit.shared_dim",
  firstDense: "moekit.first_num_dense_layers",
  guards: "moekit.guards",
  caveats: "moekit.caveats",
  hf: "moekit.hf",
} as const;

/** MaxText's unscanned path of the MoE block of decoder layer `layer` (see the convention above). */
export function maxTextBlockPrefix(decoderBlock: string, module: MoeModuleKind, layer: number, firstDenseLayers = 0): string {
  if (module === "gated_shared") return `decoder/layers_${layer}/mlp`;
  if (decoderBlock === "deepseek" && module === "routed_and_shared") {
    if (layer < firstDenseLayers)
      throw new CheckpointLayoutError("maxtext", `layer ${layer} is one of the first ${firstDenseLayers} dense layers`);
    return `decoder/moe_layers_${layer - firstDenseLayers}/DeepSeekMoeBlock_0`;
  }
  if (decoderBlock === "llama4" && module === "routed_and_shared") return `decoder/layers_${layer}/Llama4MoEBlock_0`;
  if (decoderBlock === "gpt_oss") return `decoder/layers_${layer}/GptOssMlp`;
  if (["qwen3_moe", "qwen3_custom_moe", "gemma4", "qwen3_5"].includes(decoderBlock) || module === "routed_and_shared")
    return `decoder/layers_${layer}/moe_block`;
  return `decoder/layers_${layer}/MoeBlock_0`;
}

/** Names under which a parameter may be stored: ours first, then MaxText's own flattenings. */
export function maxTextNameCandidates(prefix: string, modulePath: string): string[] {
  const p = `${prefix}/${modulePath}`;
  const dashed = p.replaceAll("/", "-");
  return [p, `params/${p}`, `params-${dashed}`, dashed];
}

export interface MaxTextWriteOptions {
  /** write shards of at most this many data bytes plus model.safetensors.index.json */
  maxShardBytes?: number;
  /** block prefix to use instead of the convention's */
  prefix?: string;
  onProgress?: (message: string) => void;
  /** replace an existing output (a file, or a folder holding checkpoint files alone) */
  overwrite?: boolean;
}

export interface MaxTextWriteResult {
  files: string[];
  prefix: string;
  tensorNames: string[];
}

function metadataOf(layer: MoeLayer, prefix: string): Record<string, string> {
  const meta: Record<string, string> = {
    [META.format]: MAXTEXT_LAYER_FORMAT,
    [META.keys]: JSON.stringify(layer.keys),
    [META.module]: layer.module,
    [META.layer]: String(layer.layer),
    [META.prefix]: prefix,
    [META.sharedDim]: String(layer.sharedDim),
    [META.firstDense]: String(layer.firstDenseLayers),
    [META.guards]: JSON.stringify(layer.guards),
    [META.caveats]: JSON.stringify(layer.caveats),
  };
  if (layer.hf !== undefined) meta[META.hf] = JSON.stringify(layer.hf);
  return meta;
}

/**
 * Writes a layer in the MaxText layout: `out` ending in .safetensors is one file; otherwise a directory
 * with model.safetensors (or shards + index when maxShardBytes is given). Parameters keep their storage dtype.
 */
const MAXTEXT_WRITE_OPTIONS = optionKeys<MaxTextWriteOptions>({ maxShardBytes: true, prefix: true, onProgress: true, overwrite: true });

export function writeMaxTextMoeLayer(layer: MoeLayer, out: string, opts: MaxTextWriteOptions = {}): MaxTextWriteResult {
  checkOptionKeys(opts, MAXTEXT_WRITE_OPTIONS, "writeMaxTextMoeLayer");
  const prefix = opts.prefix ?? maxTextBlockPrefix(layer.config.decoderBlock, layer.module, layer.layer, layer.firstDenseLayers);
  const tensors: Record<string, Tensor> = {};
  const dtypes: Record<string, StorageDType> = {};
  for (const [p, t] of Object.entries(layer.params)) {
    const name = `${prefix}/${p}`;
    tensors[name] = t;
    const s = layer.storage[p];
    if (s !== undefined) dtypes[name] = s;
  }
  const served = quantizedTensors(layer, prefix);
  Object.assign(tensors, served.tensors);
  const metadata = { ...metadataOf(layer, prefix), ...served.meta };
  opts.onProgress?.(`writing ${Object.keys(tensors).length} MaxText tensors of layer ${layer.layer} under ${prefix}/ to ${out}`);
  let files: string[];
  if (out.endsWith(".safetensors")) {
    if (opts.maxShardBytes !== undefined) throw new CheckpointLayoutError(out, "sharding needs a directory, not a .safetensors file name");
    fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    saveSafetensors(out, tensors, { dtypes, metadata, overwrite: opts.overwrite });
    files = [out];
  } else {
    files = writeCheckpointFolder(out, opts, (tmp) =>
      writeTensorFiles(tmp, tensors, { maxShardBytes: opts.maxShardBytes, dtypes, metadata }),
    );
  }
  return { files, prefix, tensorNames: Object.keys(tensors).sort() };
}

export interface MaxTextReadOptions extends LayerReadOptions {
  /** MaxText keys, when the file has no moekit metadata (e.g. a parsed MaxText YAML) */
  keys?: Record<string, unknown>;
  /** module kind, when the file has no metadata (default: routed_and_shared for deepseek/llama4 with shared_experts > 0, else routed) */
  module?: MoeModuleKind;
  /** decoder layer, when the file has no metadata */
  layer?: number;
  /** shared MLP width, when the file has no metadata (default: what the module implies) */
  sharedDim?: number;
  /** MaxText first_num_dense_layers (DeepSeek naming), when the file has no metadata */
  firstDenseLayers?: number;
  /** block prefix, instead of the convention's */
  prefix?: string;
}

function metaString(meta: Readonly<Record<string, unknown>>, key: string, source: string): string | undefined {
  const v = meta[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw new CheckpointLayoutError(source, `metadata ${key} is ${JSON.stringify(v)}, not a string`);
  return v;
}

function parseJson<T>(text: string, what: string, source: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new CheckpointLayoutError(source, `metadata ${what} is not valid JSON (${(e as Error).message})`);
  }
}

function parseInt10(text: string, what: string, source: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0)
    throw new CheckpointLayoutError(source, `metadata ${what}=${JSON.stringify(text)} is not a non-negative integer`);
  return n;
}

/**
 * Reads one MoE layer stored in the MaxText layout (a .safetensors file, a directory, or an index json).
 * The MaxText keys, module and layer come from the file's metadata, or from `opts` for files without it.
 */
export const MAXTEXT_READ_OPTIONS = [
  ...LAYER_READ_OPTIONS,
  ...optionKeys<Omit<MaxTextReadOptions, keyof LayerReadOptions>>({
    keys: true,
    module: true,
    layer: true,
    sharedDim: true,
    firstDenseLayers: true,
    prefix: true,
  }),
];

export function readMaxTextMoeLayer(location: string, opts: MaxTextReadOptions = {}): MoeLayer {
  checkOptionKeys(opts, MAXTEXT_READ_OPTIONS, "readMaxTextMoeLayer");
  const src: TensorSource & { metadata?: Readonly<Record<string, unknown>> } = opts.source ?? SafetensorsCheckpoint.open(location);
  const log = opts.onProgress ?? (() => undefined);
  try {
    const meta = (src as { metadata?: Readonly<Record<string, unknown>> }).metadata ?? {};
    const format = metaString(meta, META.format, location);
    if (format !== undefined && format !== MAXTEXT_LAYER_FORMAT) {
      throw new CheckpointLayoutError(location, `metadata ${META.format}=${format}: expected ${MAXTEXT_LAYER_FORMAT}`);
    }
    const keysText = metaString(meta, META.keys, location);
    const keys = opts.keys ?? (keysText === undefined ? undefined : parseJson<Record<string, unknown>>(keysText, META.keys, location));
    if (keys === undefined) {
      const hf = fs.existsSync(path.join(location, "config.json"));
      throw new CheckpointLayoutError(
        location,
        hf
          ? "a Hugging Face checkpoint folder (it holds config.json): read it with readHfMoeLayer or openMoeLayer (moekit convert --from hf)"
          : `no MaxText config: the file has no ${META.keys} metadata; pass the MaxText keys (the keys option; moekit run --config FILE)`,
      );
    }
    const cfg = moeConfig({ ...keys, ...opts.overrides });
    const moduleText = opts.module ?? metaString(meta, META.module, location);
    const module: MoeModuleKind =
      moduleText === undefined
        ? cfg.sharedExperts > 0 && ["deepseek", "llama4", "gemma4"].includes(cfg.decoderBlock)
          ? "routed_and_shared"
          : "routed"
        : (moduleText as MoeModuleKind);
    if (!MODULE_KINDS.includes(module))
      throw new CheckpointLayoutError(location, `module "${module}" is not one of ${MODULE_KINDS.join(", ")}`);
    const layerText = metaString(meta, META.layer, location);
    const stored = layerText === undefined ? undefined : parseInt10(layerText, META.layer, location);
    if (stored !== undefined && opts.layer !== undefined && opts.layer !== stored) {
      throw new CheckpointLayoutError(location, `holds layer ${stored}, not layer ${opts.layer}`);
    }
    const layer = opts.layer ?? stored;
    if (layer === undefined)
      throw new CheckpointLayoutError(location, `no layer index: the file has no ${META.layer} metadata; pass --layer N`);
    const sdText = metaString(meta, META.sharedDim, location);
    const sharedDim =
      opts.sharedDim ?? (sdText === undefined ? defaultSharedDim(module, cfg) : parseInt10(sdText, META.sharedDim, location));
    const fdText = metaString(meta, META.firstDense, location);
    const firstDenseLayers = opts.firstDenseLayers ?? (fdText === undefined ? 0 : parseInt10(fdText, META.firstDense, location));
    const prefix =
      opts.prefix ?? metaString(meta, META.prefix, location) ?? maxTextBlockPrefix(cfg.decoderBlock, module, layer, firstDenseLayers);
    const guardsText = metaString(meta, META.guards, location);
    const guards = guardsText === undefined ? [] : parseJson<RoutingGuard[]>(guardsText, META.guards, location);
    const caveatsText = metaString(meta, META.caveats, location);
    const caveats = caveatsText === undefined ? [] : parseJson<string[]>(caveatsText, META.caveats, location);
    const hfText = metaString(meta, META.hf, location);
    const hf = hfText === undefined ? undefined : parseJson<HfProvenance>(hfText, META.hf, location);

    const shapes = expectedParamShapes(module, cfg, sharedDim);
    const quant = parseLayerQuantization(metaString(meta, QUANT_META, location), location);
    const quantPaths = quant?.paths ?? [];
    for (const p of quantPaths)
      if (!(p in shapes)) throw new CheckpointLayoutError(location, `metadata ${QUANT_META} names ${p}, not a weight of a ${module} layer`);
    const names: Record<string, string> = {};
    for (const [p, shape] of Object.entries(shapes)) {
      if (quantPaths.includes(p)) continue;
      const name = maxTextNameCandidates(prefix, p).find((n) => src.has(n));
      if (name === undefined)
        throw new CheckpointLayoutError(location, `missing tensor ${prefix}/${p} ${fmt(shape)} (${module} layer ${layer})`);
      const info = src.info(name);
      if (!shapesEqual(info.shape, shape))
        throw new CheckpointLayoutError(location, `tensor ${name} has shape ${fmt(info.shape)}, expected ${fmt(shape)}`);
      names[p] = name;
    }
    const under = new Set([...Object.values(names), ...quantPaths.flatMap((p) => Object.values(quantizedTensorNames(`${prefix}/${p}`)))]);
    const extra = src.keys().filter((k) => !under.has(k) && maxTextNameCandidates(prefix, "").some((c) => k.startsWith(c)));
    if (extra.length > 0)
      throw new CheckpointLayoutError(
        location,
        `tensors under ${prefix}/ that a ${module} layer does not have: ${extra.slice(0, 6).join(", ")}`,
      );
    const bytes = [...under].filter((n) => src.has(n)).reduce((a, n) => a + src.info(n).dataOffsets[1] - src.info(n).dataOffsets[0], 0);
    checkLayerMemory(location, bytes);
    log(`reading ${[...under].filter((n) => src.has(n)).length} MaxText tensors of layer ${layer} under ${prefix}/`);
    const params: Record<string, Tensor> = {};
    const storage: Record<string, StorageDType> = {};
    for (const [p, name] of Object.entries(names)) {
      params[p] = withDtype(src.get(name), opts.dtype);
      storage[p] = src.info(name).dtype;
    }
    const quantized = quant === undefined ? {} : readQuantizedWeights(src, prefix, quantPaths, quant.format, shapes, location);
    const fields = { module, keys, layer, sharedDim, firstDenseLayers, params, storage, hf, caveats, guards };
    return makeLayer(quant === undefined ? fields : { ...fields, quantized }, opts.overrides, location);
  } finally {
    if (opts.source === undefined) src.close();
  }
}
