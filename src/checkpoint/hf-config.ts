// Hugging Face config.json -> MaxText MoE keys (and the module that reproduces the model's MoE block),
// for the families whose MoE layer moekit computes exactly. Everything else is refused with the reason.
// The semantics of each family were read from its published modelling code (see docs/checkpoints.md).
import { MoeError } from "../core/errors.js";
import { checkOptionKeys } from "../core/suggest.js";
import { moeConfig, twinKeys, type MoeConfig } from "../moe/config.js";
import { UnsupportedModelError, type MoeModuleKind, type RoutingGuard } from "./layer.js";

export const HF_FAMILIES = [
  "mixtral",
  "qwen2_moe",
  "qwen3_moe",
  "qwen3_next",
  "deepseek_v2",
  "deepseek_v3",
  "gpt_oss",
  "llama4",
  "olmoe",
  "granitemoe",
  "granitemoeshared",
] as const;
export type HfFamily = (typeof HF_FAMILIES)[number];

export function isHfFamily(s: string): s is HfFamily {
  return (HF_FAMILIES as readonly string[]).includes(s);
}

const ARCHITECTURES: Record<string, HfFamily> = {
  MixtralForCausalLM: "mixtral",
  Qwen2MoeForCausalLM: "qwen2_moe",
  Qwen3MoeForCausalLM: "qwen3_moe",
  Qwen3NextForCausalLM: "qwen3_next",
  DeepseekV2ForCausalLM: "deepseek_v2",
  DeepseekV3ForCausalLM: "deepseek_v3",
  GptOssForCausalLM: "gpt_oss",
  Llama4ForConditionalGeneration: "llama4",
  Llama4ForCausalLM: "llama4",
  OlmoeForCausalLM: "olmoe",
  GraniteMoeForCausalLM: "granitemoe",
  GraniteMoeSharedForCausalLM: "granitemoeshared",
};

const MODEL_TYPES: Record<string, HfFamily> = {
  mixtral: "mixtral",
  qwen2_moe: "qwen2_moe",
  qwen3_moe: "qwen3_moe",
  qwen3_next: "qwen3_next",
  deepseek_v2: "deepseek_v2",
  deepseek_v3: "deepseek_v3",
  kimi_k2: "deepseek_v3",
  gpt_oss: "gpt_oss",
  llama4: "llama4",
  llama4_text: "llama4",
  olmoe: "olmoe",
  granitemoe: "granitemoe",
  granitemoeshared: "granitemoeshared",
};

/** Known MoE architectures that are refused, and why. */
const REFUSED: Record<string, string> = {
  PhimoeForCausalLM: "PhiMoE routes with sparsemixer (masked softmaxes with jitter thresholds), a routing rule MaxText does not have",
  JetMoeForCausalLM: "JetMoE also routes its attention heads (mixture of attention); only MLP experts map to MaxText's MoE layer",
  DbrxForCausalLM: "DBRX's fused expert layout (ffn.experts.mlp.w1/v1/w2) is not mapped",
  JambaForCausalLM: "Jamba's hybrid Mamba/MoE layers are not mapped",
  GraniteMoeHybridForCausalLM: "Granite-MoE-Hybrid mixes Mamba layers in; its MoE layers are not mapped",
  Qwen3VLMoeForConditionalGeneration:
    "the Qwen3-VL-MoE checkpoint layout is not mapped (its text MoE is Qwen3-MoE's; convert the text model)",
};

/** What a Hugging Face config maps to. */
export interface HfMoeSpec {
  family: HfFamily;
  architecture: string;
  module: MoeModuleKind;
  /** MaxText keys (snake_case) */
  keys: Record<string, unknown>;
  /** hidden width of the shared MLP (0 when there is none) */
  sharedDim: number;
  numLayers: number;
  /** indices of the decoder layers that hold a MoE block */
  moeLayers: number[];
  /** MaxText first_num_dense_layers (DeepSeek: first_k_dense_replace) */
  firstDenseLayers: number;
  caveats: string[];
  guards: RoutingGuard[];
  /** the object holding the text model's fields (Llama 4: text_config) */
  text: Record<string, unknown>;
  /** the routed experts' stored format, for the quantized checkpoints moekit reads (kept compact when read) */
  quantization?: HfQuantization;
}

/** Quantized checkpoint formats read as they are stored: DeepSeek-V3's block FP8, GPT-OSS's MXFP4. */
export type HfQuantization = "fp8_e4m3" | "mxfp4";

/** The format of a quantization_config moekit reads (DeepSeek-V3 fp8 e4m3 in 128×128 blocks, GPT-OSS mxfp4), else refused. */
function checkpointQuantization(family: HfFamily, architecture: string, quant: Obj): HfQuantization {
  const method = typeof quant.quant_method === "string" ? quant.quant_method : JSON.stringify(quant);
  const blocks = JSON.stringify(quant.weight_block_size);
  // static FP8 carries activation scales that the forward would have to apply (transformers loads dynamic only)
  if (method === "fp8" && (quant.activation_scheme ?? "dynamic") !== "dynamic") {
    throw new UnsupportedModelError(
      architecture,
      `quantization_config.activation_scheme=${JSON.stringify(quant.activation_scheme)}: moekit reads fp8 checkpoints with dynamic activation scaling only (their weights, decoded per 128-block)`,
    );
  }
  if (family === "deepseek_v3" && method === "fp8" && (quant.fmt ?? "e4m3") === "e4m3" && blocks === "[128,128]") return "fp8_e4m3";
  if (family === "gpt_oss" && method === "mxfp4") return "mxfp4";
  throw new UnsupportedModelError(
    architecture,
    `quantized checkpoint (quantization_config.quant_method=${method}${quant.fmt === undefined ? "" : `, fmt=${JSON.stringify(quant.fmt)}`}${blocks === undefined ? "" : `, weight_block_size=${blocks}`}): moekit reads float weights, DeepSeek-V3's fp8 (e4m3, 128×128 blocks) and GPT-OSS's mxfp4; dequantize it (e.g. to bf16) first`,
  );
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Typed reads of config fields; absent fields take the transformers class default when one is given. */
/** Largest size or count accepted from a config.json (hidden sizes, experts, widths): far above any model's. */
const MAX_SIZE = 2 ** 24;
/** Largest num_hidden_layers accepted (the layer list is built from it). */
const MAX_LAYERS = 100_000;

class Fields {
  constructor(
    readonly o: Obj,
    readonly model: string,
  ) {}

  #fail(key: string, why: string): never {
    throw new UnsupportedModelError(this.model, `config.json ${key}=${JSON.stringify(this.o[key])}: ${why}`);
  }

  has(key: string): boolean {
    return this.o[key] !== undefined && this.o[key] !== null;
  }

  /** A size or count, checked against [0, max] before anything is sized by it. */
  int(key: string, def?: number, max = MAX_SIZE): number {
    const v = this.o[key] ?? def;
    if (v === undefined || v === null) this.#fail(key, "is required");
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) this.#fail(key, `must be an integer in [0, ${max}]`);
    return v;
  }

  num(key: string, def?: number): number {
    const v = this.o[key] ?? def;
    if (v === undefined || v === null) this.#fail(key, "is required");
    if (typeof v !== "number" || !Number.isFinite(v)) this.#fail(key, "must be a number");
    return v;
  }

  bool(key: string, def: boolean): boolean {
    const v = this.o[key] ?? def;
    if (typeof v !== "boolean") this.#fail(key, "must be true or false");
    return v;
  }

  str(key: string, def?: string): string {
    const v = this.o[key] ?? def;
    if (typeof v !== "string") this.#fail(key, "must be a string");
    return v;
  }

  intList(key: string, def: number[]): number[] {
    const v = this.o[key] ?? def;
    if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x) && x >= 0 && x <= MAX_SIZE))
      this.#fail(key, `must be a list of integers in [0, ${MAX_SIZE}]`);
    return v as number[];
  }

  refuse(why: string): never {
    throw new UnsupportedModelError(this.model, why);
  }
}

/** HF hidden_act -> MaxText activation with the same values; anything without an exact twin is refused. */
function activation(f: Fields, key = "hidden_act", def = "silu"): string {
  const act = f.str(key, def);
  switch (act) {
    case "silu":
    case "swish":
      return "silu";
    case "gelu_pytorch_tanh":
    case "gelu_new":
      return "gelu";
    case "relu":
      return "relu";
    case "sigmoid":
      return "sigmoid";
    default:
      return f.refuse(
        `hidden_act "${act}" has no exact MaxText activation (MaxText's "gelu" is the tanh approximation, HF's "gelu" is the exact erf form): refused`,
      );
  }
}

const range = (a: number, b: number, step = 1): number[] => {
  const out: number[] = [];
  for (let i = a; i < b; i += step) out.push(i);
  return out;
};

/**
 * Softmax over all experts, top-k, renormalised when `norm` (Qwen2/3-MoE, Qwen3-Next, OLMoE). With `norm`
 * this is MaxText's softmax over the k selected logits; without it, it is MaxText's DeepSeek-V2 rule
 * (softmax scores, top-k of the scores, scaling 1.0), which selects on the probabilities as HF does.
 */
function softmaxAllTopk(norm: boolean, normDecoder: string, caveats: string[]): Obj {
  if (norm) return { decoder_block: normDecoder, norm_topk_prob: true };
  caveats.push(
    'norm_topk_prob=false (softmax over all experts, top-k, no renormalisation) is MaxText\'s DeepSeek-V2 rule: decoder_block "deepseek", routed_score_func "softmax", routed_scaling_factor 1.0',
  );
  return { decoder_block: "deepseek", routed_score_func: "softmax", routed_scaling_factor: 1.0, norm_topk_prob: false };
}

/** `table[key]` for the table's own keys only ("constructor" names Object.prototype's, not a model). */
function ownEntry<T>(table: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

function detectFamily(config: Obj): { family: HfFamily; architecture: string } {
  const archs = Array.isArray(config.architectures) ? config.architectures.filter((a): a is string => typeof a === "string") : [];
  for (const a of archs) {
    const f = ownEntry(ARCHITECTURES, a);
    if (f !== undefined) return { family: f, architecture: a };
    const why = ownEntry(REFUSED, a);
    if (why !== undefined) throw new UnsupportedModelError(a, `${why}: refused`);
  }
  const mt = typeof config.model_type === "string" ? config.model_type : undefined;
  const f = mt === undefined ? undefined : ownEntry(MODEL_TYPES, mt);
  if (f !== undefined) return { family: f, architecture: archs[0] ?? mt! };
  const name = archs[0] ?? mt ?? "<no architectures or model_type>";
  throw new UnsupportedModelError(name, `not a supported MoE architecture (supported: ${Object.keys(ARCHITECTURES).join(", ")})`);
}

export interface HfConfigOptions {
  /** force a family instead of reading architectures/model_type */
  family?: HfFamily;
}

/**
 * Translates a Hugging Face config.json object into MaxText MoE keys and the module kind that computes the
 * same MoE block. Throws UnsupportedModelError for anything that cannot be reproduced exactly.
 */
export function hfConfigToMaxText(config: unknown, opts: HfConfigOptions = {}): HfMoeSpec {
  checkOptionKeys(opts, ["family"], "hfConfigToMaxText");
  if (!isObj(config)) throw new UnsupportedModelError("config.json", "is not a JSON object");
  for (const o of [config, config.text_config]) {
    const twins = isObj(o) ? twinKeys(o) : undefined;
    if (twins !== undefined)
      throw new UnsupportedModelError("config.json", `${twins[0]} and ${twins[1]} are the same key spelled twice; keep one`);
  }
  // a forced family over a config.json of another model_type: every message says so (a missing key is the likely sign)
  const declared = typeof config.model_type === "string" ? config.model_type : undefined;
  const forcedName = (f: HfFamily): string =>
    declared === undefined || declared === f ? f : `${f} (forced; config.json's model_type is ${declared})`;
  const detected = opts.family === undefined ? detectFamily(config) : { family: opts.family, architecture: forcedName(opts.family) };
  const { family, architecture } = detected;
  const quantization = isObj(config.quantization_config)
    ? checkpointQuantization(family, architecture, config.quantization_config)
    : undefined;
  const text = family === "llama4" && isObj(config.text_config) ? config.text_config : config;
  const f = new Fields(text, architecture);
  const caveats: string[] = [];
  const guards: RoutingGuard[] = [];
  const D = f.int("hidden_size");
  const L = f.int("num_hidden_layers", undefined, MAX_LAYERS);
  let keys: Obj;
  let module: MoeModuleKind = "routed";
  let sharedDim = 0;
  let moeLayers = range(0, L);
  let firstDense = 0;
  const base = (E: number, K: number, H: number, act: string): Obj => ({
    model_name: `hf-${family}`,
    emb_dim: D,
    num_experts: E,
    num_experts_per_tok: K,
    moe_mlp_dim: H,
    mlp_dim: H,
    shared_experts: 0,
    mlp_activations: [act, "linear"],
  });
  const qwenLayers = (): number[] => {
    const step = f.int("decoder_sparse_step", 1);
    const only = new Set(f.intList("mlp_only_layers", []));
    if (step < 1) f.refuse("decoder_sparse_step must be >= 1");
    return range(0, L).filter((l) => !only.has(l) && (l + 1) % step === 0);
  };

  switch (family) {
    case "mixtral": {
      keys = {
        ...base(f.int("num_local_experts"), f.int("num_experts_per_tok"), f.int("intermediate_size"), activation(f)),
        decoder_block: "mixtral",
      };
      caveats.push(
        "Mixtral: softmax over all experts, top-k, renormalise == MaxText mixtral's softmax over the top-k logits (equal up to rounding)",
      );
      break;
    }
    case "qwen2_moe":
    case "qwen3_next": {
      const norm = f.bool("norm_topk_prob", family === "qwen3_next");
      keys = {
        ...base(f.int("num_experts"), f.int("num_experts_per_tok"), f.int("moe_intermediate_size"), activation(f)),
        ...softmaxAllTopk(norm, family === "qwen3_next" ? "qwen3_next" : "default", caveats),
      };
      sharedDim = f.int("shared_expert_intermediate_size", family === "qwen3_next" ? 512 : 5632);
      if (sharedDim > 0) module = "gated_shared";
      moeLayers = qwenLayers();
      if (module === "gated_shared")
        caveats.push("shared expert gated by sigmoid(x·w_g): GatedSharedMoE (moekit extension; MaxText Qwen3NextSparseMoeBlock)");
      break;
    }
    case "qwen3_moe": {
      const norm = f.bool("norm_topk_prob", false);
      keys = {
        ...base(f.int("num_experts"), f.int("num_experts_per_tok"), f.int("moe_intermediate_size"), activation(f)),
        ...softmaxAllTopk(norm, "qwen3_moe", caveats),
      };
      moeLayers = qwenLayers();
      break;
    }
    case "olmoe": {
      const norm = f.bool("norm_topk_prob", false);
      keys = {
        ...base(f.int("num_experts"), f.int("num_experts_per_tok"), f.int("intermediate_size"), activation(f)),
        ...softmaxAllTopk(norm, "default", caveats),
      };
      break;
    }
    case "granitemoe":
    case "granitemoeshared": {
      const H = f.int("intermediate_size");
      keys = { ...base(f.int("num_local_experts"), f.int("num_experts_per_tok"), H, activation(f)), decoder_block: "default" };
      caveats.push(
        "Granite: top-k of the logits, softmax over those k (MaxText's default rule); residual_multiplier is applied outside the MoE layer",
      );
      if (family === "granitemoeshared") {
        const Hs = f.int("shared_intermediate_size", 0);
        if (Hs > 0) {
          if (Hs % H !== 0) {
            f.refuse(
              `shared_intermediate_size ${Hs} is not a multiple of intermediate_size ${H}; MaxText's ungated shared MLP is shared_experts × moe_mlp_dim wide: refused`,
            );
          }
          module = "routed_and_shared";
          sharedDim = Hs;
          keys.shared_experts = Hs / H;
        }
      }
      break;
    }
    case "deepseek_v2":
    case "deepseek_v3": {
      const v3 = family === "deepseek_v3";
      const E = f.int("n_routed_experts", v3 ? 256 : 64);
      const K = f.int("num_experts_per_tok", v3 ? 8 : undefined);
      const H = f.int("moe_intermediate_size", v3 ? 2048 : 1407);
      const S = f.has("n_shared_experts") ? f.int("n_shared_experts") : 0;
      const scale = f.num("routed_scaling_factor", v3 ? 2.5 : 1.0);
      const score = f.str("scoring_func", v3 ? "sigmoid" : "softmax");
      const method = f.str("topk_method", v3 ? "noaux_tc" : "greedy");
      const norm = f.bool("norm_topk_prob", v3);
      const nGroup = f.has("n_group") ? f.int("n_group") : 1;
      const topkGroup = f.has("topk_group") ? f.int("topk_group") : nGroup;
      const act = activation(f);
      keys = {
        ...base(E, K, H, act),
        decoder_block: "deepseek",
        model_name: v3 ? "deepseek3-hf" : "deepseek2-hf",
        mlp_dim: f.int("intermediate_size", H),
        shared_experts: S,
        routed_scaling_factor: scale,
      };
      const groupsActive = nGroup > 1 && topkGroup < nGroup;
      if (!v3) {
        if (score !== "softmax") f.refuse(`scoring_func "${score}": DeepSeek-V2 scores with softmax; refused`);
        if (method === "group_limited_greedy" && groupsActive) {
          Object.assign(keys, { n_routing_groups: nGroup, topk_routing_group: topkGroup, routing_group_score: "max" });
          guards.push("group_zero_fill");
          caveats.push(
            'group_limited_greedy: a group scores its maximum probability (moekit extension routing_group_score "max"; MaxText sums the top-2); HF fills experts outside the chosen groups with 0.0, moekit with -inf: every forward checks that all selected experts have a positive score (else refused)',
          );
        }
        if (method !== "greedy" && method !== "group_limited_greedy") f.refuse(`topk_method "${method}" is not DeepSeek-V2's`);
        if (norm && K > 1) {
          f.refuse(
            "norm_topk_prob=true: DeepSeek's own V2 code renormalises the top-k weights, transformers' DeepseekV2 does not; the result is ambiguous: refused",
          );
        }
        keys.routed_score_func = "softmax";
      } else {
        if (score !== "sigmoid") f.refuse(`scoring_func "${score}": DeepSeek-V3 routing scores with sigmoid; refused`);
        if (method !== "noaux_tc") f.refuse(`topk_method "${method}": DeepSeek-V3 routes with noaux_tc; refused`);
        Object.assign(keys, { routed_score_func: "sigmoid", routed_bias: true, norm_topk_prob: false });
        if (!norm && K > 1) {
          keys.renormalize_sigmoid_scores = false;
          caveats.push(
            "norm_topk_prob=false: raw sigmoid scores × routed_scaling_factor (moekit extension renormalize_sigmoid_scores=false; MaxText always renormalises)",
          );
        } else {
          caveats.push("norm_topk_prob: HF divides by (sum + 1e-20), MaxText by the sum (a relative difference below float64 resolution)");
        }
        if (groupsActive) {
          Object.assign(keys, { n_routing_groups: nGroup, topk_routing_group: topkGroup });
          const version = f.str("transformers_version", "");
          if (Number.parseInt(version, 10) >= 5) {
            caveats.push(`group-limited routing: transformers ${version} masks experts outside the chosen groups with -inf, as MaxText`);
          } else {
            guards.push("group_zero_fill");
            caveats.push(
              `group-limited routing: transformers ${version === "" ? "< 5 (no transformers_version)" : version} fills experts outside the chosen groups with 0.0, MaxText with -inf; every forward checks that all selected experts have a positive biased score (else refused)`,
            );
          }
        }
      }
      if (S > 0) {
        module = "routed_and_shared";
        sharedDim = S * H;
      }
      firstDense = f.int("first_k_dense_replace", v3 ? 3 : 0);
      const freq = f.int("moe_layer_freq", 1);
      if (freq < 1) f.refuse("moe_layer_freq must be >= 1");
      moeLayers = range(0, L).filter((l) => l >= firstDense && l % freq === 0);
      break;
    }
    case "gpt_oss": {
      const K = f.has("num_experts_per_tok") ? f.int("num_experts_per_tok") : f.int("experts_per_token");
      const limit = f.num("swiglu_limit", 7.0);
      if (limit !== 7.0) {
        f.refuse(
          `swiglu_limit=${limit}: transformers' GptOssExperts clamps at a fixed 7.0 and OpenAI's reference at swiglu_limit; the result is ambiguous: refused`,
        );
      }
      keys = {
        ...base(f.int("num_local_experts"), K, f.int("intermediate_size"), "sigmoid"),
        decoder_block: "gpt_oss",
        routed_bias: true,
        mlp_bias: true,
        mlp_activations_limit: 7.0,
      };
      caveats.push(
        "GPT-OSS: softmax over the top-k router logits (router has a bias); experts clamp at 7.0, glu = gate·σ(1.702·gate)·(up+1)",
      );
      break;
    }
    case "llama4": {
      const K = f.int("num_experts_per_tok", 1);
      if (K !== 1) {
        f.refuse(
          `num_experts_per_tok=${K}: Llama 4 scales each expert's input by its own sigmoid score; MaxText's llama4 routing is defined for top-1 only: refused`,
        );
      }
      const H = f.int("intermediate_size");
      keys = {
        ...base(f.int("num_local_experts"), 1, H, activation(f)),
        decoder_block: "llama4",
        mlp_dim: f.int("intermediate_size_mlp", H),
        shared_experts: 1,
      };
      module = "routed_and_shared";
      sharedDim = H;
      const step = f.int("interleave_moe_layer_step", 1);
      if (step < 1) f.refuse("interleave_moe_layer_step must be >= 1");
      moeLayers = f.has("moe_layers") ? f.intList("moe_layers", []) : range(step - 1, L, step);
      caveats.push("Llama 4: the input of the top-1 expert is scaled by sigmoid(router logit); the shared expert is added unscaled");
      break;
    }
    default:
      throw new UnsupportedModelError(architecture, "unhandled family");
  }
  // validate now, so that a bad config fails here with MaxText's key names
  moeConfig({ ...keys });
  if (quantization === "fp8_e4m3")
    caveats.push(
      "FP8 weights run weight-only (each 128-block decoded inside the kernel, as transformers' dequantizing path); DeepSeek's FP8 GEMM also quantizes activations per 128-block, which moekit does not",
    );
  if (quantization === "mxfp4")
    caveats.push("MXFP4 experts run weight-only (decoded inside the kernel, as transformers' dequantizing path)");
  const spec: HfMoeSpec = {
    family,
    architecture,
    module,
    keys,
    sharedDim,
    numLayers: L,
    moeLayers,
    firstDenseLayers: firstDense,
    caveats,
    guards,
    text,
  };
  return quantization === undefined ? spec : { ...spec, quantization };
}

/** First MoE layer of a config, or an error naming the reason. */
export function firstMoeLayer(spec: HfMoeSpec): number {
  const l = spec.moeLayers[0];
  if (l === undefined) throw new UnsupportedModelError(spec.architecture, "the config has no MoE layer");
  return l;
}

/** Checks that `layer` holds a MoE block, else explains which layers do. */
export function checkMoeLayer(spec: HfMoeSpec, layer: number): void {
  // a bad argument, not a model moekit cannot reproduce: a MoeError, not an UnsupportedModelError
  if (!Number.isInteger(layer) || layer < 0 || layer >= spec.numLayers)
    throw new MoeError(
      `[checkpoint] layer ${layer} ${Number.isInteger(layer) ? "is out of range" : "is not an integer"}: layers are 0 to ${spec.numLayers - 1} (num_hidden_layers=${spec.numLayers})`,
    );
  if (!spec.moeLayers.includes(layer)) {
    const shown = spec.moeLayers.length > 12 ? `${spec.moeLayers.slice(0, 12).join(", ")}, ...` : spec.moeLayers.join(", ");
    throw new UnsupportedModelError(
      spec.architecture,
      `layer ${layer} is a dense MLP layer, not a MoE layer (MoE layers: ${shown || "none"})`,
    );
  }
}

/** Fields of two configs that change what the MoE layer computes; returns a description of each difference. */
export function semanticDifferences(a: MoeConfig, b: MoeConfig): string[] {
  const rule = (c: MoeConfig): string => {
    if (c.isDeepseek3) return "deepseek3";
    if (c.decoderBlock === "deepseek") return "deepseek";
    if (c.decoderBlock === "llama4" || c.decoderBlock === "gemma4" || c.decoderBlock === "gpt_oss") return c.decoderBlock;
    return "softmax-over-top-k";
  };
  const fields: [string, (c: MoeConfig) => unknown][] = [
    ["routing rule", rule],
    ["num_experts", (c) => c.numExperts],
    ["num_experts_per_tok", (c) => c.numExpertsPerTok],
    ["emb_dim", (c) => c.expertInputDim],
    ["moe_mlp_dim", (c) => c.moeMlpDim],
    ["mlp_activations", (c) => c.mlpActivations.join(",")],
    ["mlp_bias", (c) => c.mlpBias],
    ["routed_bias", (c) => c.routedBias],
    ["routed_score_func", (c) => c.routedScoreFunc],
    ["routed_scaling_factor", (c) => (rule(c).startsWith("deepseek") ? c.routedScalingFactor : 1)],
    ["norm_topk_prob", (c) => (rule(c) === "softmax-over-top-k" ? "no-op" : c.normTopkProb)],
    [
      "n_routing_groups",
      (c) =>
        c.isDeepseek3 && c.nRoutingGroups > 1 && c.topkRoutingGroup < c.nRoutingGroups
          ? `${c.nRoutingGroups}/${c.topkRoutingGroup}`
          : "off",
    ],
    ["mlp_activations_limit", (c) => (c.decoderBlock === "gpt_oss" ? c.mlpActivationsLimit : "n/a")],
  ];
  const out: string[] = [];
  for (const [name, get] of fields) {
    const va = get(a);
    const vb = get(b);
    if (JSON.stringify(va) !== JSON.stringify(vb)) out.push(`${name}: ${JSON.stringify(va)} vs ${JSON.stringify(vb)}`);
  }
  return out;
}

export interface HfConfigTarget {
  module: MoeModuleKind;
  keys: Record<string, unknown>;
  sharedDim: number;
  layer: number;
  firstDenseLayers: number;
}

const ACT_TO_HF: Record<string, string> = { silu: "silu", gelu: "gelu_pytorch_tanh", relu: "relu", sigmoid: "sigmoid" };

/**
 * A minimal config.json of `family` that makes layer `target.layer` a MoE layer computing what the MaxText
 * keys compute; refused (UnsupportedModelError) when the family cannot express them (checked by mapping
 * the generated config back and comparing every key that changes the result).
 */
export function maxTextToHfConfig(family: HfFamily, target: HfConfigTarget): Record<string, unknown> {
  const c = moeConfig({ ...target.keys });
  const act = ACT_TO_HF[c.mlpActivations[0]!];
  const model = `${family} (from MaxText keys)`;
  if (act === undefined || c.mlpActivations.length !== 2 || c.mlpActivations[1] !== "linear") {
    if (family !== "gpt_oss")
      throw new UnsupportedModelError(model, `mlp_activations ${JSON.stringify(c.mlpActivations)} have no ${family} equivalent`);
  }
  const L = target.layer + 1;
  const common = { hidden_size: c.embDim, num_hidden_layers: L, hidden_act: act ?? "silu", torch_dtype: "float32" };
  const softmaxNorm = c.decoderBlock === "deepseek" && !c.isDeepseek3 ? c.normTopkProb : true;
  const H = c.moeMlpDim;
  let out: Record<string, unknown>;
  switch (family) {
    case "mixtral":
      out = {
        architectures: ["MixtralForCausalLM"],
        model_type: "mixtral",
        ...common,
        intermediate_size: H,
        num_local_experts: c.numExperts,
        num_experts_per_tok: c.numExpertsPerTok,
      };
      break;
    case "qwen2_moe":
    case "qwen3_next":
      out = {
        architectures: [family === "qwen2_moe" ? "Qwen2MoeForCausalLM" : "Qwen3NextForCausalLM"],
        model_type: family,
        ...common,
        moe_intermediate_size: H,
        shared_expert_intermediate_size: target.module === "gated_shared" ? target.sharedDim : 0,
        num_experts: c.numExperts,
        num_experts_per_tok: c.numExpertsPerTok,
        norm_topk_prob: softmaxNorm,
        decoder_sparse_step: 1,
        mlp_only_layers: [],
      };
      break;
    case "qwen3_moe":
      out = {
        architectures: ["Qwen3MoeForCausalLM"],
        model_type: "qwen3_moe",
        ...common,
        moe_intermediate_size: H,
        num_experts: c.numExperts,
        num_experts_per_tok: c.numExpertsPerTok,
        norm_topk_prob: softmaxNorm,
        decoder_sparse_step: 1,
        mlp_only_layers: [],
      };
      break;
    case "olmoe":
      out = {
        architectures: ["OlmoeForCausalLM"],
        model_type: "olmoe",
        ...common,
        intermediate_size: H,
        num_experts: c.numExperts,
        num_experts_per_tok: c.numExpertsPerTok,
        norm_topk_prob: softmaxNorm,
      };
      break;
    case "granitemoe":
    case "granitemoeshared":
      out = {
        architectures: [family === "granitemoe" ? "GraniteMoeForCausalLM" : "GraniteMoeSharedForCausalLM"],
        model_type: family,
        ...common,
        intermediate_size: H,
        num_local_experts: c.numExperts,
        num_experts_per_tok: c.numExpertsPerTok,
        ...(family === "granitemoeshared"
          ? { shared_intermediate_size: target.module === "routed_and_shared" ? target.sharedDim : 0 }
          : {}),
      };
      break;
    case "deepseek_v2":
    case "deepseek_v3": {
      const v3 = family === "deepseek_v3";
      const groups = c.nRoutingGroups > 1 ? { n_group: c.nRoutingGroups, topk_group: c.topkRoutingGroup } : { n_group: 1, topk_group: 1 };
      out = {
        architectures: [v3 ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM"],
        model_type: family,
        ...common,
        intermediate_size: c.mlpDim,
        moe_intermediate_size: H,
        n_routed_experts: c.numExperts,
        num_experts_per_tok: c.numExpertsPerTok,
        n_shared_experts: target.module === "routed_and_shared" ? c.sharedExperts : 0,
        routed_scaling_factor: c.routedScalingFactor,
        scoring_func: v3 ? "sigmoid" : "softmax",
        topk_method: v3 ? "noaux_tc" : "greedy",
        norm_topk_prob: v3,
        first_k_dense_replace: 0,
        moe_layer_freq: 1,
        ...groups,
      };
      break;
    }
    case "gpt_oss":
      out = {
        architectures: ["GptOssForCausalLM"],
        model_type: "gpt_oss",
        ...common,
        intermediate_size: H,
        num_local_experts: c.numExperts,
        num_experts_per_tok: c.numExpertsPerTok,
        swiglu_limit: c.mlpActivationsLimit,
      };
      break;
    case "llama4":
      out = {
        architectures: ["Llama4ForCausalLM"],
        model_type: "llama4_text",
        ...common,
        intermediate_size: H,
        intermediate_size_mlp: c.mlpDim,
        num_local_experts: c.numExperts,
        num_experts_per_tok: c.numExpertsPerTok,
        interleave_moe_layer_step: 1,
      };
      break;
    default:
      throw new UnsupportedModelError(model, "unhandled family");
  }
  let back: HfMoeSpec;
  try {
    back = hfConfigToMaxText(out);
  } catch (e) {
    throw new UnsupportedModelError(model, `the MaxText keys have no ${family} equivalent (${(e as Error).message})`);
  }
  const diffs = semanticDifferences(moeConfig({ ...back.keys }), c);
  if (back.module !== target.module) diffs.unshift(`module: ${back.module} vs ${target.module}`);
  if (back.sharedDim !== target.sharedDim) diffs.push(`shared width: ${back.sharedDim} vs ${target.sharedDim}`);
  if (diffs.length > 0) throw new UnsupportedModelError(model, `cannot express these MaxText keys as ${family}: ${diffs.join("; ")}`);
  return out;
}
