// MaxText's MoE model configs (values at the seed's commit, SEMANTICS.md), as MaxText keys.
import { ConfigError } from "../core/errors.js";
import { deepFreeze, moeConfig, snakeCase, type MoeConfig } from "./config.js";

/** A preset, frozen. */
export interface Preset {
  readonly name: string;
  /** which module the decoder builds around the routed experts */
  readonly layer: "routed" | "routed_and_shared";
  /** MaxText keys set by the preset (everything else: base defaults) */
  readonly keys: Readonly<Record<string, unknown>>;
  /** true for presets only in MaxText HEAD, not at the seed's commit */
  readonly headOnly?: boolean;
  readonly note?: string;
}

const silu = ["silu", "linear"];

function deepseek3(name: string, extra: Record<string, unknown> = {}): Preset {
  return {
    name,
    layer: "routed_and_shared",
    keys: {
      decoder_block: "deepseek",
      model_name: name,
      emb_dim: 7168,
      num_experts: 256,
      num_experts_per_tok: 8,
      moe_mlp_dim: 2048,
      mlp_dim: 18432,
      shared_experts: 1,
      routed_score_func: "sigmoid",
      routed_scaling_factor: 2.5,
      routed_bias: true,
      mlp_activations: silu,
      ...extra,
    },
  };
}

function qwen3(name: string, emb: number, E: number, H: number, extra: Record<string, unknown> = {}): Preset {
  return {
    name,
    layer: "routed",
    keys: {
      decoder_block: "qwen3_moe",
      model_name: name,
      emb_dim: emb,
      num_experts: E,
      num_experts_per_tok: 8,
      moe_mlp_dim: H,
      mlp_dim: H,
      shared_experts: 0,
      norm_topk_prob: true,
      ...extra,
    },
  };
}

const PRESETS: Preset[] = [
  {
    name: "mixtral-8x7b",
    layer: "routed",
    keys: {
      decoder_block: "mixtral",
      model_name: "mixtral-8x7b",
      emb_dim: 4096,
      num_experts: 8,
      num_experts_per_tok: 2,
      moe_mlp_dim: 14336,
      mlp_dim: 14336,
      shared_experts: 0,
    },
  },
  {
    name: "mixtral-8x22b",
    layer: "routed",
    keys: {
      decoder_block: "mixtral",
      model_name: "mixtral-8x22b",
      emb_dim: 6144,
      num_experts: 8,
      num_experts_per_tok: 2,
      moe_mlp_dim: 16384,
      mlp_dim: 16384,
      shared_experts: 0,
    },
  },
  {
    name: "deepseek2-16b",
    layer: "routed_and_shared",
    keys: {
      decoder_block: "deepseek",
      model_name: "deepseek2-16b",
      emb_dim: 2048,
      num_experts: 64,
      num_experts_per_tok: 6,
      moe_mlp_dim: 1408,
      mlp_dim: 10944,
      shared_experts: 2,
      routed_score_func: "softmax",
      routed_scaling_factor: 1.0,
    },
  },
  {
    name: "deepseek2-236b",
    layer: "routed_and_shared",
    keys: {
      decoder_block: "deepseek",
      model_name: "deepseek2-236b",
      emb_dim: 5120,
      num_experts: 160,
      num_experts_per_tok: 6,
      moe_mlp_dim: 1536,
      mlp_dim: 12288,
      shared_experts: 2,
      routed_score_func: "softmax",
      routed_scaling_factor: 16.0,
    },
  },
  deepseek3("deepseek3-671b"),
  deepseek3("deepseek3-671b-2dfsdp"),
  deepseek3("deepseek3-671b-batchsplit", { n_routing_groups: 8, topk_routing_group: 4 }),
  deepseek3("deepseek3.2-671b"),
  deepseek3("deepseek3-test", { emb_dim: 512, moe_mlp_dim: 512 }),
  deepseek3("deepseek3-tiny", { emb_dim: 64, num_experts: 16, moe_mlp_dim: 64, mlp_dim: 64 }),
  {
    ...deepseek3("deepseek-custom", { emb_dim: 1024, num_experts: 16, num_experts_per_tok: 2, moe_mlp_dim: 512, mlp_dim: 2048 }),
    note: "model_name does not start with deepseek3: generic top-k on the biased scores (as MaxText runs it)",
  },
  {
    ...deepseek3("kimi-k2-1t", { num_experts: 384, routed_scaling_factor: 2.827 }),
    note: "model_name does not start with deepseek3: generic top-k on the biased scores (as MaxText runs it)",
  },
  {
    name: "gemma4-26b",
    layer: "routed_and_shared",
    keys: {
      decoder_block: "gemma4",
      model_name: "gemma4-26b",
      emb_dim: 2816,
      num_experts: 128,
      num_experts_per_tok: 8,
      moe_mlp_dim: 704,
      mlp_dim: 2112,
      shared_experts: 1,
      norm_topk_prob: true,
      mlp_activations: ["gelu", "linear"],
      load_balance_loss_weight: 0.001,
    },
  },
  ...[
    ["gpt-oss-20b", 32],
    ["gpt-oss-120b", 128],
  ].map(([name, E]): Preset => ({
    name: name as string,
    layer: "routed",
    keys: {
      decoder_block: "gpt_oss",
      model_name: name,
      emb_dim: 2880,
      num_experts: E,
      num_experts_per_tok: 4,
      moe_mlp_dim: 2880,
      mlp_dim: 2880,
      shared_experts: 0,
      routed_bias: true,
      mlp_activations: ["sigmoid", "linear"],
      mlp_activations_limit: 7.0,
      mlp_bias: true,
    },
  })),
  {
    name: "llama4-17b-16e",
    layer: "routed_and_shared",
    keys: {
      decoder_block: "llama4",
      model_name: "llama4-17b-16e",
      emb_dim: 5120,
      num_experts: 16,
      num_experts_per_tok: 1,
      moe_mlp_dim: 8192,
      mlp_dim: 8192,
      shared_experts: 1,
    },
  },
  {
    name: "llama4-17b-128e",
    layer: "routed_and_shared",
    keys: {
      decoder_block: "llama4",
      model_name: "llama4-17b-128e",
      emb_dim: 5120,
      num_experts: 128,
      num_experts_per_tok: 1,
      moe_mlp_dim: 8192,
      mlp_dim: 16384,
      shared_experts: 1,
    },
  },
  qwen3("qwen3-30b-a3b", 2048, 128, 768),
  qwen3("qwen3-30b-a3b-base", 2048, 128, 768),
  qwen3("qwen3-omni-30b-a3b", 2048, 128, 768),
  qwen3("qwen3-235b-a22b", 4096, 128, 1536, { load_balance_loss_weight: 0.001 }),
  qwen3("qwen3-480b-a35b", 6144, 160, 2560),
  { ...qwen3("qwen3-custom-30b-a3b", 2048, 128, 2048, { decoder_block: "qwen3_custom_moe", moe_expert_input_dim: 768 }) },
  {
    ...qwen3("qwen3-next-80b-a3b", 2048, 512, 512, { decoder_block: "qwen3_next", num_experts_per_tok: 10 }),
    note: "routed experts only: Qwen3-Next's sigmoid-gated shared expert is GatedSharedMoE (the API; its checkpoints load as that module)",
  },
  {
    name: "deepseek4-284b",
    layer: "routed_and_shared",
    headOnly: true,
    keys: {
      decoder_block: "deepseek4",
      model_name: "deepseek4-284b",
      emb_dim: 4096,
      num_experts: 256,
      num_experts_per_tok: 6,
      moe_mlp_dim: 2048,
      mlp_dim: 2048,
      shared_experts: 1,
      routed_score_func: "sqrtsoftplus",
      routed_scaling_factor: 1.5,
      routed_bias: true,
      routed_bias_update_rate: 0.001,
      norm_topk_prob: true,
      mlp_activations_limit: 10.0,
      load_balance_loss_weight: 1e-4,
    },
    note: "deepseek4 decoder semantics beyond the seed (hash layers) are not modelled",
  },
  {
    name: "deepseek4-tiny",
    layer: "routed_and_shared",
    headOnly: true,
    keys: {
      decoder_block: "deepseek4",
      model_name: "deepseek4-tiny",
      emb_dim: 64,
      num_experts: 16,
      num_experts_per_tok: 4,
      moe_mlp_dim: 64,
      mlp_dim: 64,
      shared_experts: 1,
      routed_score_func: "sqrtsoftplus",
      routed_scaling_factor: 1.0,
      routed_bias: true,
      routed_bias_update_rate: 0.001,
      mlp_activations_limit: 10.0,
      load_balance_loss_weight: 1e-4,
    },
  },
  ...(
    [
      ["envy-switch-base", 1536, 128, 6144],
      ["envy-switch-large", 2048, 128, 8192],
      ["envy-switch-xxl", 8192, 64, 20480],
    ] as const
  ).map(([name, emb, E, H]): Preset => ({
    name,
    layer: "routed",
    headOnly: true,
    keys: {
      decoder_block: "envy",
      model_name: name,
      emb_dim: emb,
      num_experts: E,
      num_experts_per_tok: 1,
      moe_mlp_dim: H,
      mlp_dim: H,
      shared_experts: 0,
      load_balance_loss_weight: 0.01,
    },
  })),
  {
    name: "envy-test",
    layer: "routed",
    headOnly: true,
    keys: {
      decoder_block: "envy",
      model_name: "envy-test",
      emb_dim: 8,
      num_experts: 8,
      num_experts_per_tok: 1,
      moe_mlp_dim: 16,
      mlp_dim: 16,
      shared_experts: 0,
      megablox: false,
      sparse_matmul: false,
    },
  },
  { ...qwen3("qwen3-vl-30b-a3b", 2048, 128, 768), headOnly: true },
  {
    name: "qwen3.5-35b-a3b",
    layer: "routed",
    headOnly: true,
    keys: {
      decoder_block: "qwen3_5",
      model_name: "qwen3.5-35b-a3b",
      emb_dim: 2048,
      num_experts: 256,
      num_experts_per_tok: 8,
      moe_mlp_dim: 512,
      mlp_dim: 512,
      shared_experts: 1,
      norm_topk_prob: true,
    },
    note: "routed experts only: a gated shared expert as Qwen3.5's is GatedSharedMoE, in the API",
  },
  {
    name: "qwen3.5-397b-a17b",
    layer: "routed",
    headOnly: true,
    keys: {
      decoder_block: "qwen3_5",
      model_name: "qwen3.5-397b-a17b",
      emb_dim: 4096,
      num_experts: 512,
      num_experts_per_tok: 10,
      moe_mlp_dim: 1024,
      mlp_dim: 1024,
      shared_experts: 1,
      norm_topk_prob: true,
    },
    note: "routed experts only: a gated shared expert as Qwen3.5's is GatedSharedMoE, in the API",
  },
];

/** Scaled-down twin: same routing semantics, small dims, float32, for tests and demos. */
function tinyTwin(p: Preset): Preset {
  const k = p.keys;
  const E0 = k.num_experts as number;
  const groups = (k.n_routing_groups as number | undefined) ?? -1;
  const E = groups > 0 ? Math.min(E0, groups * 2) : Math.min(E0, 8);
  const K = Math.min(k.num_experts_per_tok as number, groups > 0 ? 4 : Math.max(1, E / 2));
  const dims: Record<string, unknown> = {
    emb_dim: 32,
    moe_mlp_dim: 48,
    mlp_dim: 64,
    num_experts: E,
    num_experts_per_tok: K,
    dtype: "float32",
  };
  if ((k.moe_expert_input_dim as number | undefined) !== undefined) dims.moe_expert_input_dim = 24;
  return { ...p, name: `tiny-${p.name}`, keys: { ...k, ...dims } };
}

// frozen: getPreset and listPresets hand these out, and a user's change to one changed every later presetConfig
const ALL: readonly Preset[] = deepFreeze([...PRESETS, ...PRESETS.map(tinyTwin)]);

export function listPresets(): readonly Preset[] {
  return ALL;
}

export function getPreset(name: string): Preset {
  const p = ALL.find((x) => x.name === name);
  if (p === undefined) throw new ConfigError("preset", name, `unknown preset (see \`moekit presets\`)`);
  return p;
}

/** The validated config of a preset, with optional overrides (MaxText keys). */
export function presetConfig(name: string, overrides: Record<string, unknown> = {}): MoeConfig {
  // an override in camelCase replaces the preset's snake_case key, and an undefined one leaves it as the preset has it
  const given = Object.entries(overrides).filter(([, v]) => v !== undefined);
  return moeConfig({ ...getPreset(name).keys, ...Object.fromEntries(given.map(([k, v]) => [snakeCase(k), v])) });
}
