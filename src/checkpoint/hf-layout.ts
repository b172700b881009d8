// Hugging Face checkpoint layout <-> moekit/MaxText parameters for one MoE layer.
// Reading is lazy: only the requested layer's MoE tensors are read (headers are checked first), so memory
// is proportional to that layer. Every transform (transpose, stack, split, de-interleave) moves values
// without arithmetic, so HF -> moekit -> HF is bit-exact.
import fs from "node:fs";
import path from "node:path";
import type { Tensor } from "../core/tensor.js";
import { fmt, shapesEqual } from "../core/shape.js";
import { checkOptionKeys, optionKeys } from "../core/suggest.js";
import { SafetensorsCheckpoint, type StorageDType } from "../io/index.js";
import { defaultStorage } from "../io/codec.js";
import { checkJsonDepth, readRegularFile } from "../io/files.js";
import { moeConfig } from "../moe/config.js";
import {
  CheckpointLayoutError,
  ROUTED_PREFIX,
  SHARED_GATE_PATH,
  SHARED_PREFIX,
  expectedParamShapes,
  makeLayer,
  LAYER_READ_OPTIONS,
  type LayerReadOptions,
  type MoeLayer,
  type MoeModuleKind,
  type TensorSource,
} from "./layer.js";
import {
  checkMoeLayer,
  firstMoeLayer,
  hfConfigToMaxText,
  isHfFamily,
  maxTextToHfConfig,
  semanticDifferences,
  type HfFamily,
  type HfMoeSpec,
} from "./hf-config.js";
import { indexAxis0, joinAxis, splitAxis, stackTransposed, transposeLast2, withDtype, type SplitMode } from "./transforms.js";
import { writeCheckpointFolder, writeTensorFiles } from "./write-folder.js";
import { checkLayerMemory } from "./layer-memory.js";
import { checkStored, quantizedHfTensors, readQuantizedRule } from "./hf-quantized.js";
import type { QuantizedWeight } from "../ops/quantized-weight.js";

/** How one HF tensor (or a set of per-expert tensors) maps onto moekit parameters. */
export type HfRule =
  /** [..., out, in] (torch Linear weight) <-> [..., in, out] */
  | { kind: "transposed"; hf: string; mt: string }
  /** same shape on both sides */
  | { kind: "copy"; hf: string; mt: string }
  /** E tensors [out, in], one per expert <-> [E, in, out] */
  | { kind: "experts"; hf: (e: number) => string; hfPattern: string; mt: string }
  /** [(E,) 2H, D]: first H rows -> mt[0], last H rows -> mt[1], each transposed to [(E,) D, H] */
  | { kind: "fusedRows"; hf: string; mt: [string, string] }
  /** [..., 2H]: halves or even/odd columns -> two [..., H] */
  | { kind: "splitLast"; hf: string; mt: [string, string]; mode: SplitMode };

export type ExpertLayout = "legacy" | "fused";

/** Where a family's MoE block lives inside a decoder layer, and the tensor that identifies it. */
function blockPrefixes(family: HfFamily, layerPrefix: string, layout: ExpertLayout): { block: string; extra: string[] } {
  switch (family) {
    case "mixtral":
      return { block: `${layerPrefix}.${layout === "legacy" ? "block_sparse_moe" : "mlp"}`, extra: [] };
    case "llama4":
      return { block: `${layerPrefix}.feed_forward`, extra: [] };
    case "granitemoe":
    case "granitemoeshared":
      return { block: `${layerPrefix}.block_sparse_moe`, extra: [`${layerPrefix}.shared_mlp`] };
    default:
      return { block: `${layerPrefix}.mlp`, extra: [] };
  }
}

/** Tensor names that identify a family's MoE block (any one present means the layer is there). */
function probeNames(family: HfFamily, layerPrefix: string): string[] {
  switch (family) {
    case "mixtral":
      return [`${layerPrefix}.block_sparse_moe.gate.weight`, `${layerPrefix}.mlp.gate.weight`];
    case "gpt_oss":
      return [`${layerPrefix}.mlp.router.weight`];
    case "llama4":
      return [`${layerPrefix}.feed_forward.router.weight`];
    case "granitemoe":
    case "granitemoeshared":
      return [`${layerPrefix}.block_sparse_moe.router.layer.weight`];
    default:
      return [`${layerPrefix}.mlp.gate.weight`];
  }
}

/** Decoder layer prefixes used by transformers checkpoints (CausalLM, multimodal wrappers). */
export function layerPrefixCandidates(layer: number): string[] {
  return [`model.layers.${layer}`, `language_model.model.layers.${layer}`, `model.language_model.layers.${layer}`];
}

/** Names of the three projections of a SwiGLU expert: [gate, up, down]. */
function expertProjNames(family: HfFamily): [string, string, string] {
  return family === "mixtral" ? ["w1", "w3", "w2"] : ["gate_proj", "up_proj", "down_proj"];
}

/** The mapping rules of one MoE layer of `family`. */
export function hfRules(family: HfFamily, module: MoeModuleKind, layerPrefix: string, layout: ExpertLayout): HfRule[] {
  const R = ROUTED_PREFIX[module];
  const Sh = SHARED_PREFIX[module];
  const { block: P } = blockPrefixes(family, layerPrefix, layout);
  const rules: HfRule[] = [];
  const swigluExperts = (names: [string, string, string]): void => {
    if (layout === "fused") {
      rules.push({ kind: "fusedRows", hf: `${P}.experts.gate_up_proj`, mt: [`${R}wi_0`, `${R}wi_1`] });
      rules.push({ kind: "transposed", hf: `${P}.experts.down_proj`, mt: `${R}wo` });
      return;
    }
    const mts = [`${R}wi_0`, `${R}wi_1`, `${R}wo`];
    names.forEach((n, i) =>
      rules.push({ kind: "experts", hf: (e) => `${P}.experts.${e}.${n}.weight`, hfPattern: `${P}.experts.{e}.${n}.weight`, mt: mts[i]! }),
    );
  };
  const sharedMlp = (base: string): void => {
    rules.push({ kind: "transposed", hf: `${base}.gate_proj.weight`, mt: `${Sh}wi_0/kernel` });
    rules.push({ kind: "transposed", hf: `${base}.up_proj.weight`, mt: `${Sh}wi_1/kernel` });
    rules.push({ kind: "transposed", hf: `${base}.down_proj.weight`, mt: `${Sh}wo/kernel` });
  };
  switch (family) {
    case "mixtral":
    case "qwen2_moe":
    case "qwen3_moe":
    case "qwen3_next":
    case "olmoe":
    case "deepseek_v2":
    case "deepseek_v3":
      rules.push({ kind: "transposed", hf: `${P}.gate.weight`, mt: `${R}gate/kernel` });
      if (family === "deepseek_v3") rules.push({ kind: "copy", hf: `${P}.gate.e_score_correction_bias`, mt: `${R}gate/bias` });
      swigluExperts(expertProjNames(family));
      if (module === "routed_and_shared") sharedMlp(`${P}.shared_experts`);
      if (module === "gated_shared") {
        sharedMlp(`${P}.shared_expert`);
        rules.push({ kind: "transposed", hf: `${P}.shared_expert_gate.weight`, mt: SHARED_GATE_PATH });
      }
      break;
    case "gpt_oss":
      rules.push({ kind: "transposed", hf: `${P}.router.weight`, mt: `${R}gate/kernel` });
      rules.push({ kind: "copy", hf: `${P}.router.bias`, mt: `${R}gate/bias` });
      rules.push({ kind: "splitLast", hf: `${P}.experts.gate_up_proj`, mt: [`${R}wi_0`, `${R}wi_1`], mode: "interleave" });
      rules.push({ kind: "splitLast", hf: `${P}.experts.gate_up_proj_bias`, mt: [`${R}wi_0_bias`, `${R}wi_1_bias`], mode: "interleave" });
      rules.push({ kind: "copy", hf: `${P}.experts.down_proj`, mt: `${R}wo` });
      rules.push({ kind: "copy", hf: `${P}.experts.down_proj_bias`, mt: `${R}wo_bias` });
      break;
    case "llama4":
      rules.push({ kind: "transposed", hf: `${P}.router.weight`, mt: `${R}gate/kernel` });
      rules.push({ kind: "splitLast", hf: `${P}.experts.gate_up_proj`, mt: [`${R}wi_0`, `${R}wi_1`], mode: "halves" });
      rules.push({ kind: "copy", hf: `${P}.experts.down_proj`, mt: `${R}wo` });
      sharedMlp(`${P}.shared_expert`);
      break;
    case "granitemoe":
    case "granitemoeshared":
      rules.push({ kind: "transposed", hf: `${P}.router.layer.weight`, mt: `${R}gate/kernel` });
      rules.push({ kind: "fusedRows", hf: `${P}.input_linear.weight`, mt: [`${R}wi_0`, `${R}wi_1`] });
      rules.push({ kind: "transposed", hf: `${P}.output_linear.weight`, mt: `${R}wo` });
      if (module === "routed_and_shared") {
        rules.push({
          kind: "fusedRows",
          hf: `${layerPrefix}.shared_mlp.input_linear.weight`,
          mt: [`${Sh}wi_0/kernel`, `${Sh}wi_1/kernel`],
        });
        rules.push({ kind: "transposed", hf: `${layerPrefix}.shared_mlp.output_linear.weight`, mt: `${Sh}wo/kernel` });
      }
      break;
    default:
      throw new CheckpointLayoutError(family, "unhandled family");
  }
  return rules;
}

/** Expected HF shape of each name of a rule, from the moekit parameter shapes. */
function hfShapes(rule: HfRule, mt: Record<string, number[]>, numExperts: number): Map<string, number[]> {
  const m = (p: string): number[] => {
    const s = mt[p];
    if (s === undefined) throw new CheckpointLayoutError(rule.kind, `no expected shape for ${p}`);
    return s;
  };
  const swap = (s: number[]): number[] => [...s.slice(0, -2), s[s.length - 1]!, s[s.length - 2]!];
  switch (rule.kind) {
    case "transposed":
      return new Map([[rule.hf, swap(m(rule.mt))]]);
    case "copy":
      return new Map([[rule.hf, m(rule.mt)]]);
    case "experts": {
      const s = m(rule.mt);
      return new Map(Array.from({ length: numExperts }, (_, e) => [rule.hf(e), [s[2]!, s[1]!]]));
    }
    case "fusedRows": {
      const s = m(rule.mt[0]);
      return new Map([[rule.hf, [...s.slice(0, -2), 2 * s[s.length - 1]!, s[s.length - 2]!]]]);
    }
    case "splitLast": {
      const s = m(rule.mt[0]);
      return new Map([[rule.hf, [...s.slice(0, -1), 2 * s[s.length - 1]!]]]);
    }
  }
}

function ruleParams(rule: HfRule): string[] {
  return typeof rule.mt === "string" ? [rule.mt] : [...rule.mt];
}

export interface HfReadOptions extends LayerReadOptions {
  /** read as this family instead of the config's architectures/model_type */
  family?: HfFamily;
}

/** Largest config.json read (real ones are a few KiB). */
const MAX_CONFIG_BYTES = 16 << 20;

function readConfigJson(dir: string): Record<string, unknown> {
  const file = path.join(dir, "config.json");
  const fail = (problem: string): never => {
    throw new CheckpointLayoutError(file, problem);
  };
  if (!fs.existsSync(file)) fail("does not exist; a Hugging Face checkpoint is a directory with config.json and *.safetensors");
  const text = new TextDecoder().decode(readRegularFile(file, fail, MAX_CONFIG_BYTES));
  checkJsonDepth(text, fail);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CheckpointLayoutError(file, `is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new CheckpointLayoutError(file, "is not a JSON object");
  return json as Record<string, unknown>;
}

/** The layer prefix and expert layout under which `src` holds layer `layer` of `spec`'s family. */
function locateLayer(src: TensorSource, spec: HfMoeSpec, layer: number, source: string): { layerPrefix: string; layout: ExpertLayout } {
  for (const lp of layerPrefixCandidates(layer)) {
    if (!probeNames(spec.family, lp).some((n) => src.has(n))) continue;
    let layout: ExpertLayout = "legacy";
    if (spec.family !== "gpt_oss" && spec.family !== "llama4" && !spec.family.startsWith("granite")) {
      const legacy = blockPrefixes(spec.family, lp, "legacy").block;
      const fused = blockPrefixes(spec.family, lp, "fused").block;
      const gateName = expertProjNames(spec.family)[0];
      if (!src.has(`${legacy}.experts.0.${gateName}.weight`) && src.has(`${fused}.experts.gate_up_proj`)) layout = "fused";
    }
    return { layerPrefix: lp, layout };
  }
  const candidates = layerPrefixCandidates(layer);
  const present = src.keys().filter((k) => candidates.some((c) => k.startsWith(`${c}.`)));
  const shown = present.slice(0, 10).join(", ");
  throw new CheckpointLayoutError(
    source,
    `no MoE block of layer ${layer} (looked for ${probeNames(spec.family, candidates[0]!).join(" or ")}); ` +
      (present.length === 0
        ? "the checkpoint has no tensors of that layer"
        : `tensors of that layer: ${shown}${present.length > 10 ? ", ..." : ""}`),
  );
}

/**
 * Reads MoE layer `layer` (default: the first MoE layer) of a Hugging Face checkpoint directory (config.json
 * plus model.safetensors, or shards with model.safetensors.index.json) into moekit parameters. Only that
 * layer's tensors are read; their names and shapes are checked against config.json before any data is read,
 * and tensors of the block that moekit does not understand (e.g. quantization scales) are refused.
 */
const HF_READ_OPTIONS = [...LAYER_READ_OPTIONS, ...optionKeys<Omit<HfReadOptions, keyof LayerReadOptions>>({ family: true })];
const HF_WRITE_OPTIONS = optionKeys<HfWriteOptions>({ family: true, maxShardBytes: true, overwrite: true, onProgress: true });

export function readHfMoeLayer(dir: string, layer?: number, opts: HfReadOptions = {}): MoeLayer {
  checkOptionKeys(opts, HF_READ_OPTIONS, "readHfMoeLayer");
  const config = readConfigJson(dir);
  const spec = hfConfigToMaxText(config, { family: opts.family });
  const N = layer ?? firstMoeLayer(spec);
  checkMoeLayer(spec, N);
  const cfg = moeConfig({ ...spec.keys, ...opts.overrides });
  const log = opts.onProgress ?? (() => undefined);
  const src: TensorSource = opts.source ?? SafetensorsCheckpoint.open(dir);
  try {
    const { layerPrefix, layout } = locateLayer(src, spec, N, dir);
    const rules = hfRules(spec.family, spec.module, layerPrefix, layout);
    const mtShapes = expectedParamShapes(spec.module, cfg, spec.sharedDim);
    // 1. every tensor present with the shape config.json implies (headers only)
    const consumed = new Set<string>();
    let bytes = 0;
    for (const rule of rules) {
      const stored = quantizedHfTensors(spec.quantization, rule, mtShapes, cfg.numExperts);
      for (const [name, want] of stored ?? []) {
        checkStored(src, name, want, dir);
        bytes += src.info(name).dataOffsets[1] - src.info(name).dataOffsets[0];
        consumed.add(name);
      }
      if (stored !== undefined) continue;
      for (const [name, shape] of hfShapes(rule, mtShapes, cfg.numExperts)) {
        if (!src.has(name)) {
          const pattern = rule.kind === "experts" ? ` (one per expert: ${rule.hfPattern})` : "";
          throw new CheckpointLayoutError(dir, `missing tensor ${name}${pattern} for ${spec.architecture} layer ${N}`);
        }
        const info = src.info(name);
        if (!shapesEqual(info.shape, shape)) {
          const over = Object.keys(opts.overrides ?? {});
          const by = over.length > 0 ? `config.json with the overrides (${over.join(", ")})` : "config.json";
          throw new CheckpointLayoutError(dir, `tensor ${name} has shape ${fmt(info.shape)}, but ${by} implies ${fmt(shape)}`);
        }
        bytes += info.dataOffsets[1] - info.dataOffsets[0];
        consumed.add(name);
      }
    }
    // 2. nothing else in the block (quantization scales, unknown extras) that would change the result
    const owned = [blockPrefixes(spec.family, layerPrefix, layout).block, ...blockPrefixes(spec.family, layerPrefix, layout).extra];
    const extra = src.keys().filter((k) => owned.some((o) => k.startsWith(`${o}.`)) && !consumed.has(k));
    if (extra.length > 0) {
      throw new CheckpointLayoutError(
        dir,
        `layer ${N} has tensors moekit does not understand (quantized or another layout?): ${extra.slice(0, 6).join(", ")}${extra.length > 6 ? ", ..." : ""}`,
      );
    }
    log(
      `reading layer ${N} of ${spec.architecture} (${spec.module}, E=${cfg.numExperts}, K=${cfg.numExpertsPerTok}, D=${cfg.embDim}, H=${cfg.moeMlpDim}): ${consumed.size} tensors, ${(bytes / 2 ** 20).toFixed(1)} MiB`,
    );
    checkLayerMemory(dir, bytes);
    // 3. read and transform
    const params: Record<string, Tensor> = {};
    const storage: Record<string, StorageDType> = {};
    const quantized: Record<string, QuantizedWeight> = {};
    let done = 0;
    const get = (name: string): Tensor => {
      const t = src.get(name);
      done++;
      if (done % 64 === 0 || done === consumed.size) log(`  ${done}/${consumed.size} tensors read`);
      return t;
    };
    const put = (p: string, t: Tensor, stored: StorageDType): void => {
      params[p] = withDtype(t, opts.dtype);
      storage[p] = stored;
    };
    for (const rule of rules) {
      if (spec.quantization !== undefined && quantizedHfTensors(spec.quantization, rule, mtShapes, cfg.numExperts) !== undefined) {
        Object.assign(quantized, readQuantizedRule(spec.quantization, rule, src, mtShapes, cfg.numExperts));
        continue;
      }
      switch (rule.kind) {
        case "transposed":
          put(rule.mt, transposeLast2(get(rule.hf)), src.info(rule.hf).dtype);
          break;
        case "copy":
          put(rule.mt, get(rule.hf), src.info(rule.hf).dtype);
          break;
        case "experts": {
          const stored = src.info(rule.hf(0)).dtype;
          for (let e = 1; e < cfg.numExperts; e++) {
            const d = src.info(rule.hf(e)).dtype;
            if (d !== stored) throw new CheckpointLayoutError(dir, `${rule.hf(e)} is stored as ${d}, ${rule.hf(0)} as ${stored}`);
          }
          const s = mtShapes[rule.mt]!;
          put(
            rule.mt,
            stackTransposed(cfg.numExperts, (e) => get(rule.hf(e)), [s[2]!, s[1]!]),
            stored,
          );
          break;
        }
        case "fusedRows": {
          const [a, b] = splitAxis(get(rule.hf), -2, "halves");
          const stored = src.info(rule.hf).dtype;
          put(rule.mt[0], transposeLast2(a), stored);
          put(rule.mt[1], transposeLast2(b), stored);
          break;
        }
        case "splitLast": {
          const [a, b] = splitAxis(get(rule.hf), -1, rule.mode);
          const stored = src.info(rule.hf).dtype;
          put(rule.mt[0], a, stored);
          put(rule.mt[1], b, stored);
          break;
        }
      }
    }
    return makeLayer(
      {
        module: spec.module,
        keys: spec.keys,
        layer: N,
        sharedDim: spec.sharedDim,
        firstDenseLayers: spec.firstDenseLayers,
        params,
        storage,
        ...(Object.keys(quantized).length > 0 ? { quantized } : {}),
        hf: { family: spec.family, config, layerPrefix, expertLayout: layout },
        caveats: spec.caveats,
        guards: spec.guards,
      },
      opts.overrides,
      dir,
    );
  } finally {
    if (opts.source === undefined) src.close();
  }
}

/** HF tensors (name -> tensor, storage dtype) of a layer, by the family's rules. */
export function hfTensorsOf(
  layer: MoeLayer,
  family: HfFamily,
  layerPrefix: string,
  layout: ExpertLayout,
): { tensors: Record<string, Tensor>; dtypes: Record<string, StorageDType> } {
  const rules = hfRules(family, layer.module, layerPrefix, layout);
  const tensors: Record<string, Tensor> = {};
  const dtypes: Record<string, StorageDType> = {};
  const used = new Set<string>();
  const param = (p: string): Tensor => {
    const t = layer.params[p];
    if (t === undefined) throw new CheckpointLayoutError(family, `the layer has no parameter ${p}, which ${family} needs`);
    used.add(p);
    return t;
  };
  const emit = (name: string, t: Tensor, p: string): void => {
    tensors[name] = t;
    dtypes[name] = layer.storage[p] ?? defaultStorage(t.dtype);
  };
  for (const rule of rules) {
    switch (rule.kind) {
      case "transposed":
        emit(rule.hf, transposeLast2(param(rule.mt)), rule.mt);
        break;
      case "copy":
        emit(rule.hf, param(rule.mt), rule.mt);
        break;
      case "experts": {
        const t = param(rule.mt);
        for (let e = 0; e < layer.config.numExperts; e++) emit(rule.hf(e), transposeLast2(indexAxis0(t, e)), rule.mt);
        break;
      }
      case "fusedRows":
        emit(rule.hf, joinAxis(transposeLast2(param(rule.mt[0])), transposeLast2(param(rule.mt[1])), -2, "halves"), rule.mt[0]);
        break;
      case "splitLast":
        emit(rule.hf, joinAxis(param(rule.mt[0]), param(rule.mt[1]), -1, rule.mode), rule.mt[0]);
        break;
    }
  }
  for (const rule of rules) for (const p of ruleParams(rule)) used.add(p);
  const left = Object.keys(layer.params).filter((p) => !used.has(p));
  if (left.length > 0) throw new CheckpointLayoutError(family, `parameters with no ${family} tensor: ${left.join(", ")}`);
  return { tensors, dtypes };
}

export interface HfWriteOptions {
  /** target family; default: the family the layer was read from */
  family?: HfFamily;
  /** write shards of at most this many data bytes plus model.safetensors.index.json (default: one model.safetensors) */
  maxShardBytes?: number;
  /** replace an existing checkpoint folder (one holding nothing else) */
  overwrite?: boolean;
  /** progress messages */
  onProgress?: (message: string) => void;
}

export interface HfWriteResult {
  dir: string;
  family: HfFamily;
  files: string[];
  tensorNames: string[];
}

/**
 * Writes a layer as a Hugging Face checkpoint directory: config.json (the original one when the layer was
 * read from HF, else a minimal config of `family` checked to compute the same thing) and the layer's
 * tensors under their transformers names, in their original storage dtypes. Only this layer's MoE tensors
 * are written (a partial checkpoint that moekit reads back).
 */
export function writeHfMoeLayer(layer: MoeLayer, dir: string, opts: HfWriteOptions = {}): HfWriteResult {
  checkOptionKeys(opts, HF_WRITE_OPTIONS, "writeHfMoeLayer");
  if (layer.quantized !== undefined)
    throw new CheckpointLayoutError(dir, "a quantized (served) layer is written in the MaxText layout only (--to maxtext)");
  const family = opts.family ?? (layer.hf !== undefined && isHfFamily(layer.hf.family) ? layer.hf.family : undefined);
  if (family === undefined) {
    throw new CheckpointLayoutError(
      dir,
      "the layer was not read from a Hugging Face checkpoint: name the target family (mixtral, qwen3_moe, deepseek_v3, ...)",
    );
  }
  let config: Record<string, unknown>;
  let layerPrefix: string;
  let layout: ExpertLayout = "legacy";
  if (layer.hf !== undefined && layer.hf.family === family) {
    config = layer.hf.config;
    layerPrefix = layer.hf.layerPrefix;
    layout = layer.hf.expertLayout ?? "legacy";
    const back = hfConfigToMaxText(config);
    const diffs = semanticDifferences(moeConfig({ ...back.keys }), moeConfig({ ...layer.keys }));
    if (diffs.length > 0 || back.module !== layer.module) {
      throw new CheckpointLayoutError(
        dir,
        `the layer's MaxText keys no longer match its config.json: ${diffs.join("; ") || `module ${back.module} vs ${layer.module}`}`,
      );
    }
  } else {
    config = maxTextToHfConfig(family, {
      module: layer.module,
      keys: layer.keys,
      sharedDim: layer.sharedDim,
      layer: layer.layer,
      firstDenseLayers: layer.firstDenseLayers,
    });
    layerPrefix = `model.layers.${layer.layer}`;
  }
  const { tensors, dtypes } = hfTensorsOf(layer, family, layerPrefix, layout);
  // a generated config names the tensors' dtype (transformers loads them as torch_dtype)
  if (layer.hf === undefined || layer.hf.family !== family) {
    const stored = new Set(Object.values(dtypes));
    if (stored.size === 1 && stored.has("BF16")) config = { ...config, torch_dtype: "bfloat16" };
  }
  const log = opts.onProgress ?? (() => undefined);
  log(`writing ${Object.keys(tensors).length} tensors of layer ${layer.layer} as ${family} to ${dir}`);
  const files = writeCheckpointFolder(dir, opts, (tmp) => {
    fs.writeFileSync(path.join(tmp, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
    return writeTensorFiles(tmp, tensors, { maxShardBytes: opts.maxShardBytes, dtypes, metadata: { format: "pt" } });
  });
  return { dir, family, files, tensorNames: Object.keys(tensors).sort() };
}
