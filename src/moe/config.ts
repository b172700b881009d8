// MaxText MoE config: snake_case keys in, camelCase fields out, MaxText's base defaults, validated.
import { parse as parseYaml } from "yaml";
import { isFloat, parseDType, type DType } from "../core/dtype.js";
import { ConfigError, MoeError } from "../core/errors.js";
import { checkOptionKeys, didYouMean, optionKeys } from "../core/suggest.js";
import { ACTIVATION_NAMES } from "../ops/nn.js";
import { readQuantCfg, validateQuantization, type QuantCfg } from "./quant-config.js";

export const DECODER_BLOCKS = [
  "default",
  "llama2",
  "mistral",
  "mixtral",
  "deepseek",
  "deepseek4",
  "gemma",
  "gemma2",
  "gemma3",
  "gemma4",
  "gpt3",
  "gpt_oss",
  "qwen2",
  "qwen3",
  "qwen3_moe",
  "qwen3_custom_moe",
  "qwen3_next",
  "qwen3_5",
  "llama4",
  "simple",
  "simple_mlp",
  "olmo3",
  "envy",
] as const;
export type DecoderBlock = (typeof DECODER_BLOCKS)[number];

/** `v` and everything in it frozen: the library's tables, handed to users as they are, cannot be changed under it. */
export function deepFreeze<T>(v: T): T {
  if (typeof v === "object" && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

const DEFAULTS = {
  num_experts: 1,
  num_experts_per_tok: 1,
  emb_dim: 2048,
  mlp_dim: 7168,
  moe_mlp_dim: 7168,
  moe_expert_input_dim: -1,
  padded_base_moe_mlp_dim: null as number | null,
  capacity_factor: -1.0,
  sparse_matmul: true,
  megablox: true,
  use_tokamax_gmm: false,
  routed_score_func: "",
  routed_bias: false,
  routed_bias_update_rate: 0.0,
  routed_scaling_factor: 1.0,
  n_routing_groups: -1,
  topk_routing_group: -1,
  /** moekit extension: a routing group's score, "top2_sum" (MaxText's deepseek3) or "max" (DeepSeek-V2's group_limited_greedy) */
  routing_group_score: "top2_sum",
  /** moekit extension: false keeps deepseek routing's sigmoid weights unnormalised (DeepSeek-V3, norm_topk_prob=false) */
  renormalize_sigmoid_scores: true,
  norm_topk_prob: false,
  decoder_block: "llama2" as DecoderBlock,
  model_name: "default",
  mlp_activations: ["silu", "linear"] as string[],
  mlp_activations_limit: -1.0,
  mlp_bias: false,
  load_balance_loss_weight: 0.0,
  float32_weight_sum: true,
  float32_gate_logits: false,
  activations_in_float32: false,
  shared_experts: 1,
  dropout_rate: 0.0,
  model_call_mode: "",
  use_random_routing: false,
  use_ring_of_experts: false,
  ragged_buffer_factor: -1.0,
  use_custom_sort_vjp: true,
  ici_context_autoregressive_parallelism: 1,
  ici_expert_parallelism: 1,
  ici_tensor_parallelism: 1,
  ici_tensor_transpose_parallelism: 1,
  attention: "autoselected",
  matmul_precision: "default",
  dtype: "bfloat16" as string,
  weight_dtype: "float32" as string,
  quantization: "",
  /** intmp's per-layer precision ({"__default__": {"w_bits": 8}}); MaxText reads it from quant_cfg_path */
  quant_cfg: null as QuantCfg | null,
  quant_cfg_path: "",
  quantization_local_shard_count: -1,
  use_qwix_quantization: false,
  prefuse_moe_weights: false,
  fused_mlp: false,
  shard_exp_on_fsdp: false,
  use_2d_fsdp_sharding: false,
  use_batch_split_schedule: false,
  moe_fsdp_use_two_stage_all_gather: false,
  wi_tile_fwd_batch_seq: 512,
  wi_tile_fwd_embed_dim: 1024,
  wi_tile_fwd_mlp_dim: 1024,
  wi_tile_dlhs_batch_seq: 512,
  wi_tile_dlhs_mlp_dim: 1024,
  wi_tile_dlhs_embed_dim: 1024,
  wi_tile_drhs_batch_seq: 512,
  wi_tile_drhs_embed_dim: 1024,
  wi_tile_drhs_mlp_dim: 1024,
  wo_tile_fwd_batch_seq: 512,
  wo_tile_fwd_mlp_dim: 1024,
  wo_tile_fwd_embed_dim: 1024,
  wo_tile_dlhs_batch_seq: 512,
  wo_tile_dlhs_embed_dim: 1024,
  wo_tile_dlhs_mlp_dim: 1024,
  wo_tile_drhs_batch_seq: 512,
  wo_tile_drhs_mlp_dim: 1024,
  wo_tile_drhs_embed_dim: 1024,
};

/** Every key the MoE layer reads, with MaxText's base.yml default (frozen). Order is the PARITY.md order. */
export const MOE_DEFAULTS: Readonly<typeof DEFAULTS> = deepFreeze(DEFAULTS);

export type MaxTextMoeKeys = typeof MOE_DEFAULTS;
export type RawConfig = { [K in keyof MaxTextMoeKeys]?: MaxTextMoeKeys[K] } & Record<string, unknown>;

type Camel<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;

/** The validated config: MaxText keys camelCased 1:1, plus resolved derived values. */
export type MoeConfig = { readonly [K in keyof MaxTextMoeKeys as Camel<K>]: MaxTextMoeKeys[K] } & {
  readonly dtype: DType;
  readonly weightDtype: DType;
  /** moe_expert_input_dim if > 0, else emb_dim */
  readonly expertInputDim: number;
  /** true for model names starting with "deepseek3" (pre-bias weights, group routing) */
  readonly isDeepseek3: boolean;
};

export function camelCase(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

// camelCase does not invert where a digit follows "_" (use_2d_fsdp_sharding -> use2dFsdpSharding): the known keys' own
const SNAKE_OF_CAMEL: ReadonlyMap<string, string> = new Map(Object.keys(MOE_DEFAULTS).map((k) => [camelCase(k), k]));

export function snakeCase(key: string): string {
  return SNAKE_OF_CAMEL.get(key) ?? key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The first key of `obj` spelled twice (`num_experts` and `numExperts`), as [snake, camel]; undefined if none. */
export function twinKeys(obj: Record<string, unknown>): [string, string] | undefined {
  for (const k of Object.keys(obj)) {
    const snake = snakeCase(k);
    if (snake !== k && Object.hasOwn(obj, snake)) return [snake, k];
  }
  return undefined;
}

function suggest(key: string): string {
  return didYouMean(key, Object.keys(MOE_DEFAULTS));
}

export interface ConfigOptions {
  /** Reject keys the MoE layer does not read (default true). false ignores them (a whole MaxText YAML). */
  strict?: boolean;
}

function checkType(key: string, value: unknown, def: unknown): void {
  if (def === null) {
    if (value !== null && !(typeof value === "number" && Number.isInteger(value))) {
      throw new ConfigError(key, value, "must be an integer or null");
    }
    return;
  }
  if (Array.isArray(def)) {
    if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
      throw new ConfigError(key, value, "must be a list of strings");
    }
    return;
  }
  if (typeof value !== typeof def) throw new ConfigError(key, value, `must be a ${typeof def}`);
  if (typeof def === "number" && !Number.isFinite(value as number)) throw new ConfigError(key, value, "must be finite");
}

const INT_KEYS = new Set([
  "num_experts",
  "num_experts_per_tok",
  "emb_dim",
  "mlp_dim",
  "moe_mlp_dim",
  "moe_expert_input_dim",
  "n_routing_groups",
  "topk_routing_group",
  "shared_experts",
  "ici_context_autoregressive_parallelism",
  "ici_expert_parallelism",
  "ici_tensor_parallelism",
  "ici_tensor_transpose_parallelism",
  "quantization_local_shard_count",
]);

/** Whether routing is limited to the top groups: MaxText's deepseek3 models, or DeepSeek-V2's (routing_group_score "max"). */
export function groupRouting(c: MoeConfig): boolean {
  return c.isDeepseek3 || c.routingGroupScore === "max";
}

// MaxText's model YAMLs give base_emb_dim, base_mlp_dim and base_moe_mlp_dim: pyconfig derives emb_dim, mlp_dim and
// moe_mlp_dim from them, scaled by 2^k for global_parameter_scale 2^j (1, its default, leaves them as given).
const BASE_KEYS: Readonly<Record<string, string>> = { base_emb_dim: "emb_dim", base_mlp_dim: "mlp_dim", base_moe_mlp_dim: "moe_mlp_dim" };

const WHOLE_YAML = " (a whole MaxText model YAML: moeConfig(keys, { strict: false }) or moekit run --skip-other-keys)";

function fromBaseKeys(raw: Record<string, unknown>): Record<string, unknown> {
  const out = { ...raw };
  for (const name of ["global_parameter_scale", "globalParameterScale"]) {
    if (!Object.hasOwn(out, name)) continue;
    if (out[name] !== 1 && out[name] !== undefined)
      throw new ConfigError(name, out[name], "only 1 (MaxText's default) is supported: give the sizes (emb_dim, moe_mlp_dim) you want");
    delete out[name];
  }
  for (const [base, key] of Object.entries(BASE_KEYS)) {
    for (const name of [base, camelCase(base)]) {
      if (!Object.hasOwn(out, name)) continue;
      const v = out[name];
      delete out[name];
      // as pyconfig, which sets the size from the base key whatever the size key held (a preset's emb_dim, say)
      if (v !== undefined && !Number.isInteger(v)) throw new ConfigError(name, v, "must be an integer");
      if (v !== undefined) {
        delete out[camelCase(key)];
        out[key] = v;
      }
    }
  }
  return out;
}

/** The keys of a MaxText YAML that the MoE layer reads (base_* and global_parameter_scale included), and the rest. */
export function splitMoeKeys(keys: Record<string, unknown>): { moe: Record<string, unknown>; other: string[] } {
  const reads = (k: string): boolean =>
    [k, snakeCase(k)].some((n) => Object.hasOwn(MOE_DEFAULTS, n) || Object.hasOwn(BASE_KEYS, n) || n === "global_parameter_scale");
  const moe = Object.fromEntries(Object.entries(keys).filter(([k]) => reads(k)));
  return { moe, other: Object.keys(keys).filter((k) => !reads(k)) };
}

/**
 * Build a validated MoeConfig from MaxText keys (snake_case, as in MaxText YAML; camelCase also accepted).
 * Missing keys take MaxText's base defaults. Errors name the key, the value and why. base_emb_dim,
 * base_mlp_dim and base_moe_mlp_dim stand for emb_dim, mlp_dim and moe_mlp_dim, as MaxText's pyconfig derives them.
 */
export function moeConfig(given: Record<string, unknown> = {}, opts: ConfigOptions = {}): MoeConfig {
  if (typeof given !== "object" || given === null || Array.isArray(given))
    throw new MoeError(
      `[moeConfig] the config must be an object of MaxText keys (parseMoeConfig reads YAML text), got ${given === null ? "null" : Array.isArray(given) ? "an array" : typeof given}`,
    );
  const raw = fromBaseKeys(given);
  checkOptionKeys(opts, optionKeys<ConfigOptions>({ strict: true }), "moeConfig");
  const strict = opts.strict ?? true;
  const merged: Record<string, unknown> = { ...MOE_DEFAULTS, mlp_activations: [...MOE_DEFAULTS.mlp_activations] };
  const twins = twinKeys(raw);
  if (twins !== undefined)
    throw new ConfigError(twins[1], raw[twins[1]], `is given twice, also as ${twins[0]}=${JSON.stringify(raw[twins[0]])}; keep one`);
  for (const [k0, v] of Object.entries(raw)) {
    // own keys only: "constructor" or "__proto__" are Object.prototype's, not MaxText's
    const k = Object.hasOwn(MOE_DEFAULTS, k0) ? k0 : snakeCase(k0);
    if (!Object.hasOwn(MOE_DEFAULTS, k)) {
      if (strict) throw new ConfigError(k0, v, `is not a MoE config key${suggest(k0) || WHOLE_YAML}`);
      continue;
    }
    if (v === undefined) continue; // as JavaScript options: {dtype: undefined} is the default
    if (k !== "quant_cfg") checkType(k0, v, (MOE_DEFAULTS as Record<string, unknown>)[k]);
    if (INT_KEYS.has(k) && !Number.isInteger(v)) throw new ConfigError(k0, v, "must be an integer");
    merged[k] = v;
  }
  const cfg: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(merged)) cfg[camelCase(k)] = v;
  const dtype = parseDType(merged.dtype as string);
  const weightDtype = parseDType(merged.weight_dtype as string);
  if (dtype === undefined || !isFloat(dtype)) throw new ConfigError("dtype", merged.dtype, "must be float32, bfloat16 or float64");
  if (weightDtype === undefined || !isFloat(weightDtype)) {
    throw new ConfigError("weight_dtype", merged.weight_dtype, "must be float32, bfloat16 or float64");
  }
  cfg.dtype = dtype;
  cfg.weightDtype = weightDtype;
  cfg.expertInputDim = (merged.moe_expert_input_dim as number) > 0 ? merged.moe_expert_input_dim : merged.emb_dim;
  cfg.isDeepseek3 = (merged.model_name as string).startsWith("deepseek3");
  cfg.quantCfg = readQuantCfg(merged.quant_cfg, merged.quant_cfg_path as string);
  const c = Object.freeze(cfg) as unknown as MoeConfig;
  validate(c);
  return c;
}

/** Keys set to a value this config does not read, as MaxText ignores them too: for the CLI to say so. */
export function unreadKeys(c: MoeConfig): string[] {
  const out: string[] = [];
  if (c.sparseMatmul && c.capacityFactor > 0)
    out.push(
      `capacity_factor=${c.capacityFactor} drops no tokens on the sparse path (sparse_matmul=true is dropless); sparse_matmul=false drops them`,
    );
  if (!groupRouting(c) && c.nRoutingGroups !== -1)
    out.push(
      `n_routing_groups=${c.nRoutingGroups} is read by deepseek3 model names (model_name=${JSON.stringify(c.modelName)}) or routing_group_score=max only`,
    );
  return out;
}

/** Refuses what moeConfig did not make: a raw object of MaxText keys would read as NaN sizes further on. */
export function checkIsConfig(config: unknown, where: string): asserts config is MoeConfig {
  const c = config as Partial<MoeConfig> | null | undefined;
  if (typeof c?.numExperts !== "number" || typeof c.expertInputDim !== "number")
    throw new MoeError(
      `[${where}] needs a config made by moeConfig({...MaxText keys}) or parseMoeConfig(text), got ${c === null ? "null" : typeof c === "object" ? "another object" : typeof c}`,
    );
}

/** Parse a JSON or YAML text into a config (YAML 1.1, as MaxText's PyYAML reads its configs: `10_000` is a number). */
export function parseMoeConfig(text: string, opts: ConfigOptions = {}): MoeConfig {
  const obj: unknown = parseYaml(text, { version: "1.1" });
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    throw new ConfigError("<config>", typeof obj, "must be a mapping of MaxText keys");
  }
  return moeConfig(obj as Record<string, unknown>, opts);
}

/** Back to MaxText snake_case keys. */
export function toMaxTextKeys(cfg: MoeConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(MOE_DEFAULTS)) out[k] = (cfg as unknown as Record<string, unknown>)[camelCase(k)];
  // quant_cfg holds what quant_cfg_path named: keep one of the two
  if (out.quant_cfg !== null) out.quant_cfg_path = "";
  return out;
}

function positive(key: string, v: number): void {
  if (!(v >= 1)) throw new ConfigError(key, v, "must be >= 1");
}

function validate(c: MoeConfig): void {
  positive("num_experts", c.numExperts);
  positive("num_experts_per_tok", c.numExpertsPerTok);
  positive("emb_dim", c.embDim);
  positive("mlp_dim", c.mlpDim);
  positive("moe_mlp_dim", c.moeMlpDim);
  positive("ici_context_autoregressive_parallelism", c.iciContextAutoregressiveParallelism);
  positive("ici_expert_parallelism", c.iciExpertParallelism);
  positive("ici_tensor_parallelism", c.iciTensorParallelism);
  positive("ici_tensor_transpose_parallelism", c.iciTensorTransposeParallelism);
  if (c.quantizationLocalShardCount < -1)
    throw new ConfigError(
      "quantization_local_shard_count",
      c.quantizationLocalShardCount,
      "must be -1 (MaxText: the slice count), 0 or a count of shards",
    );
  if (c.numExpertsPerTok > c.numExperts) {
    throw new ConfigError("num_experts_per_tok", c.numExpertsPerTok, `must be <= num_experts (${c.numExperts})`);
  }
  if (!(DECODER_BLOCKS as readonly string[]).includes(c.decoderBlock)) {
    throw new ConfigError("decoder_block", c.decoderBlock, `unknown (known: ${DECODER_BLOCKS.join(", ")})`);
  }
  if (c.mlpActivations.length === 0) throw new ConfigError("mlp_activations", c.mlpActivations, "needs at least one activation");
  for (const a of c.mlpActivations) {
    if (!ACTIVATION_NAMES.includes(a)) {
      throw new ConfigError("mlp_activations", c.mlpActivations, `unknown activation "${a}" (known: ${ACTIVATION_NAMES.join(", ")})`);
    }
  }
  if (c.routedScoreFunc !== "" && !ACTIVATION_NAMES.includes(c.routedScoreFunc)) {
    throw new ConfigError("routed_score_func", c.routedScoreFunc, `unknown score function (known: "", ${ACTIVATION_NAMES.join(", ")})`);
  }
  if (c.isDeepseek3 && c.routedScoreFunc === "") {
    throw new ConfigError(
      "routed_score_func",
      "",
      `a deepseek3 model (model_name=${c.modelName}) needs a score function; the seed leaves pre_bias_logits undefined without one`,
    );
  }
  if (!["top2_sum", "max"].includes(c.routingGroupScore)) {
    throw new ConfigError("routing_group_score", c.routingGroupScore, 'must be "top2_sum" (MaxText) or "max" (DeepSeek-V2)');
  }
  if (c.routingGroupScore === "max" && (c.decoderBlock !== "deepseek" || c.isDeepseek3 || c.nRoutingGroups === -1)) {
    throw new ConfigError(
      "routing_group_score",
      "max",
      "is DeepSeek-V2's group routing: needs decoder_block deepseek, a model_name not deepseek3*, and n_routing_groups",
    );
  }
  if (!c.renormalizeSigmoidScores && c.decoderBlock !== "deepseek") {
    throw new ConfigError("renormalize_sigmoid_scores", false, "only changes deepseek routing (decoder_block deepseek)");
  }
  if (groupRouting(c) && c.nRoutingGroups !== -1) {
    const g = c.nRoutingGroups;
    const least = c.routingGroupScore === "max" ? 1 : 2;
    if (g < 1 || c.numExperts % g !== 0) throw new ConfigError("n_routing_groups", g, `must divide num_experts (${c.numExperts}) or be -1`);
    if (c.numExperts / g < least) throw new ConfigError("n_routing_groups", g, "groups need >= 2 experts (group score = sum of the top-2)");
    if (c.topkRoutingGroup < 1 || c.topkRoutingGroup > g) {
      throw new ConfigError("topk_routing_group", c.topkRoutingGroup, `must be in [1, n_routing_groups=${g}]`);
    }
    if (c.numExpertsPerTok > c.topkRoutingGroup * (c.numExperts / g)) {
      throw new ConfigError("num_experts_per_tok", c.numExpertsPerTok, `exceeds the experts in the top ${c.topkRoutingGroup} groups`);
    }
  }
  if (c.decoderBlock === "llama4" && c.numExpertsPerTok > 1) {
    throw new ConfigError("num_experts_per_tok", c.numExpertsPerTok, "llama4 routing scales inputs by one router score per token: needs 1");
  }
  if (c.decoderBlock === "llama4" && !c.sparseMatmul && c.capacityFactor > 0 && c.modelCallMode !== "inference") {
    throw new ConfigError(
      "capacity_factor",
      c.capacityFactor,
      "llama4 with token dropping in training is undefined in the seed (no routing weights)",
    );
  }
  if (!c.sparseMatmul && c.capacityFactor > 0 && c.modelCallMode === "inference" && c.mlpBias) {
    throw new ConfigError("mlp_bias", true, "the dense inference capacity path adds the bias on the wrong axis in the seed: unsupported");
  }
  if (c.decoderBlock === "gpt_oss" && !(c.mlpActivationsLimit > 0)) {
    throw new ConfigError("mlp_activations_limit", c.mlpActivationsLimit, "gpt_oss clamps to ±limit: must be > 0");
  }
  if (c.modelCallMode !== "" && c.modelCallMode !== "inference") {
    throw new ConfigError("model_call_mode", c.modelCallMode, 'must be "" (training) or "inference"');
  }
  if (c.sharedExperts < 0) throw new ConfigError("shared_experts", c.sharedExperts, "must be >= 0");
  if (!(c.dropoutRate >= 0 && c.dropoutRate < 1)) throw new ConfigError("dropout_rate", c.dropoutRate, "must be in [0, 1)");
  if (c.loadBalanceLossWeight < 0) throw new ConfigError("load_balance_loss_weight", c.loadBalanceLossWeight, "must be >= 0");
  if (c.routedBiasUpdateRate < 0) throw new ConfigError("routed_bias_update_rate", c.routedBiasUpdateRate, "must be >= 0");
  if (c.attention === "vllm_rpa")
    throw new ConfigError("attention", c.attention, "the vLLM fused path (tpu-inference) is not available here");
  validateQuantization(c);
  if (c.paddedBaseMoeMlpDim !== null && c.paddedBaseMoeMlpDim !== c.moeMlpDim) {
    throw new ConfigError(
      "padded_base_moe_mlp_dim",
      c.paddedBaseMoeMlpDim,
      "only meaningful for the vLLM GMM_v2 path; must be null or equal to moe_mlp_dim",
    );
  }
  if (c.iciExpertParallelism > 1 && c.numExperts % c.iciExpertParallelism !== 0) {
    throw new ConfigError("ici_expert_parallelism", c.iciExpertParallelism, `must divide num_experts (${c.numExperts})`);
  }
  if (!["default", "high", "highest", "float32", "bfloat16", "tensorfloat32", "fastest"].includes(c.matmulPrecision)) {
    throw new ConfigError("matmul_precision", c.matmulPrecision, "must be a jax.lax.Precision name (default, high, highest)");
  }
}
