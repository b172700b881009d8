// config.json -> MaxText keys: the mapping of each family, and the refusals (never approximations).
import { describe, expect, it } from "vitest";
import {
  UnsupportedModelError,
  checkMoeLayer,
  hfConfigToMaxText,
  maxTextToHfConfig,
  semanticDifferences,
  type HfFamily,
} from "../../src/checkpoint/index.js";
import { moeConfig } from "../../src/moe/config.js";
import { getPreset } from "../../src/moe/presets.js";
import { makeFixture } from "./fixtures.js";

const withCfg = (family: string, patch: Record<string, unknown>): Record<string, unknown> => ({ ...makeFixture(family).config, ...patch });

describe("hfConfigToMaxText: mappings", () => {
  it("Mixtral -> mixtral decoder, RoutedMoE", () => {
    const s = hfConfigToMaxText(makeFixture("mixtral").config);
    expect(s.family).toBe("mixtral");
    expect(s.module).toBe("routed");
    expect(s.keys).toMatchObject({
      decoder_block: "mixtral",
      num_experts: 4,
      num_experts_per_tok: 2,
      emb_dim: 16,
      moe_mlp_dim: 24,
      mlp_activations: ["silu", "linear"],
    });
    expect(s.moeLayers).toEqual([0, 1, 2]);
  });

  it("norm_topk_prob=false (Qwen2-MoE, OLMoE) -> DeepSeek-V2 softmax rule; true -> softmax over the k logits", () => {
    const q2 = hfConfigToMaxText(makeFixture("qwen2_moe").config);
    expect(q2.keys).toMatchObject({
      decoder_block: "deepseek",
      routed_score_func: "softmax",
      routed_scaling_factor: 1,
      norm_topk_prob: false,
    });
    expect(q2.module).toBe("gated_shared");
    expect(q2.sharedDim).toBe(20);
    expect(q2.moeLayers).toEqual([1, 2]);
    const q3 = hfConfigToMaxText(makeFixture("qwen3_moe").config);
    expect(q3.keys).toMatchObject({ decoder_block: "qwen3_moe", norm_topk_prob: true });
    expect(moeConfig(q3.keys).isDeepseek3).toBe(false);
    const next = hfConfigToMaxText(makeFixture("qwen3_next").config);
    expect(next.keys).toMatchObject({ decoder_block: "qwen3_next", norm_topk_prob: true });
  });

  it("DeepSeek-V3 -> deepseek3 model name, sigmoid + bias, groups, MaxText norm off (its sigmoid weights are always renormalised)", () => {
    const s = hfConfigToMaxText(makeFixture("deepseek_v3").config);
    expect(s.keys).toMatchObject({
      decoder_block: "deepseek",
      routed_score_func: "sigmoid",
      routed_bias: true,
      routed_scaling_factor: 2.5,
      n_routing_groups: 4,
      topk_routing_group: 2,
      norm_topk_prob: false,
      shared_experts: 1,
    });
    expect(moeConfig(s.keys).isDeepseek3).toBe(true);
    expect(s.guards).toEqual(["group_zero_fill"]);
    expect(s.moeLayers).toEqual([1, 2]);
    expect(s.firstDenseLayers).toBe(1);
    // no group restriction: no group keys, no guard
    const ng = hfConfigToMaxText(withCfg("deepseek_v3", { n_group: 1, topk_group: 1 }));
    expect(ng.keys.n_routing_groups).toBeUndefined();
    expect(ng.guards).toEqual([]);
  });

  it("GPT-OSS, Llama 4, Granite", () => {
    expect(hfConfigToMaxText(makeFixture("gpt_oss").config).keys).toMatchObject({
      decoder_block: "gpt_oss",
      routed_bias: true,
      mlp_bias: true,
      mlp_activations: ["sigmoid", "linear"],
      mlp_activations_limit: 7,
    });
    const l4 = hfConfigToMaxText(makeFixture("llama4").config);
    expect(l4.module).toBe("routed_and_shared");
    expect(l4.moeLayers).toEqual([1]);
    expect(l4.keys).toMatchObject({ decoder_block: "llama4", num_experts_per_tok: 1, shared_experts: 1, mlp_dim: 40 });
    const gs = hfConfigToMaxText(makeFixture("granitemoeshared").config);
    expect(gs.module).toBe("routed_and_shared");
    expect(gs.keys.shared_experts).toBe(2);
  });

  it("gelu_pytorch_tanh maps to MaxText's (tanh) gelu", () => {
    expect(hfConfigToMaxText(withCfg("mixtral", { hidden_act: "gelu_pytorch_tanh" })).keys.mlp_activations).toEqual(["gelu", "linear"]);
  });
});

describe("hfConfigToMaxText: DeepSeek routing beyond MaxText's keys (moekit extensions)", () => {
  it("DeepSeek-V2 group_limited_greedy: groups scored by their maximum, the 0.0 fill checked on every forward", () => {
    const s = hfConfigToMaxText(withCfg("deepseek_v2", { topk_method: "group_limited_greedy", n_group: 2, topk_group: 1 }));
    expect(s.keys).toMatchObject({ n_routing_groups: 2, topk_routing_group: 1, routing_group_score: "max", routed_score_func: "softmax" });
    expect(moeConfig(s.keys).isDeepseek3).toBe(false);
    expect(s.guards).toEqual(["group_zero_fill"]);
    // without a group limit it is plain greedy
    const g = hfConfigToMaxText(withCfg("deepseek_v2", { topk_method: "group_limited_greedy", n_group: 2, topk_group: 2 }));
    expect(g.keys.routing_group_score).toBeUndefined();
  });

  it("DeepSeek-V3 with norm_topk_prob=false: raw sigmoid scores times the scaling factor", () => {
    const s = hfConfigToMaxText(withCfg("deepseek_v3", { norm_topk_prob: false }));
    expect(s.keys).toMatchObject({ renormalize_sigmoid_scores: false, norm_topk_prob: false, routed_scaling_factor: 2.5 });
    expect(hfConfigToMaxText(makeFixture("deepseek_v3").config).keys.renormalize_sigmoid_scores).toBeUndefined();
  });

  it("DeepSeek-V3 group routing from transformers 5 masks with -inf as MaxText: no guard", () => {
    expect(hfConfigToMaxText(withCfg("deepseek_v3", { transformers_version: "5.0.0" })).guards).toEqual([]);
    expect(hfConfigToMaxText(withCfg("deepseek_v3", { transformers_version: "4.57.1" })).guards).toEqual(["group_zero_fill"]);
  });

  it("the extension keys are checked", () => {
    const base = { decoder_block: "deepseek", num_experts: 4, num_experts_per_tok: 2, routed_score_func: "softmax", n_routing_groups: 2 };
    expect(() => moeConfig({ ...base, routing_group_score: "sum" })).toThrow(/routing_group_score/);
    expect(() => moeConfig({ ...base, routing_group_score: "max", n_routing_groups: -1 })).toThrow(/needs decoder_block deepseek/);
    expect(() => moeConfig({ ...base, routing_group_score: "max", model_name: "deepseek3-671b" })).toThrow(/routing_group_score/);
    expect(() => moeConfig({ decoder_block: "mixtral", renormalize_sigmoid_scores: false })).toThrow(/renormalize_sigmoid_scores/);
    expect(moeConfig({ ...base, routing_group_score: "max", topk_routing_group: 1 }).routingGroupScore).toBe("max");
  });
});

describe("hfConfigToMaxText: refusals", () => {
  const refused: [string, Record<string, unknown>, RegExp][] = [
    ["PhiMoE (sparsemixer routing)", { architectures: ["PhimoeForCausalLM"], model_type: "phimoe" }, /sparsemixer/],
    ["an unknown architecture", { architectures: ["FooForCausalLM"], model_type: "foo" }, /not a supported MoE architecture/],
    ["exact-erf gelu", withCfg("mixtral", { hidden_act: "gelu" }), /no exact MaxText activation/],
    ["a quantized checkpoint", withCfg("deepseek_v3", { quantization_config: { quant_method: "fp8" } }), /quantized checkpoint.*fp8/],
    ["DeepSeek-V2 norm_topk_prob", withCfg("deepseek_v2", { norm_topk_prob: true }), /ambiguous/],
    ["DeepSeek-V3 with softmax scores", withCfg("deepseek_v3", { scoring_func: "softmax" }), /sigmoid/],
    ["GPT-OSS with another clamp", withCfg("gpt_oss", { swiglu_limit: 5 }), /ambiguous/],
    [
      "Llama 4 top-2",
      { ...makeFixture("llama4").config, text_config: { ...(makeFixture("llama4").config.text_config as object), num_experts_per_tok: 2 } },
      /top-1 only/,
    ],
    [
      "Granite shared width not a multiple of the expert width",
      withCfg("granitemoeshared", { shared_intermediate_size: 20 }),
      /not a multiple/,
    ],
    ["a missing dimension", withCfg("mixtral", { num_local_experts: undefined }), /num_local_experts.*required/],
    ["not an object", [] as unknown as Record<string, unknown>, /not a JSON object/],
  ];
  it.each(refused)("%s", (_, config, why) => {
    expect(() => hfConfigToMaxText(config)).toThrow(UnsupportedModelError);
    expect(() => hfConfigToMaxText(config)).toThrow(why);
  });

  it("a dense layer or an out-of-range layer is named as such", () => {
    const s = hfConfigToMaxText(makeFixture("deepseek_v3").config);
    expect(() => checkMoeLayer(s, 0)).toThrow(/layer 0 is a dense MLP layer.*MoE layers: 1, 2/);
    expect(() => checkMoeLayer(s, 3)).toThrow(/out of range/);
  });
});

describe("maxTextToHfConfig", () => {
  const presets: [string, HfFamily, string][] = [
    ["mixtral-8x7b", "mixtral", "routed"],
    ["qwen3-30b-a3b", "qwen3_moe", "routed"],
    ["deepseek3-671b", "deepseek_v3", "routed_and_shared"],
    ["deepseek3-671b-batchsplit", "deepseek_v3", "routed_and_shared"],
    ["deepseek2-16b", "deepseek_v2", "routed_and_shared"],
    ["gpt-oss-20b", "gpt_oss", "routed"],
    ["llama4-17b-16e", "llama4", "routed_and_shared"],
  ];
  it.each(presets)("the MaxText preset %s is expressible as %s", (name, family, module) => {
    const keys = getPreset(name).keys;
    const cfg = moeConfig(keys);
    const sharedDim = module === "routed" ? 0 : cfg.sharedExperts * cfg.moeMlpDim;
    const hf = maxTextToHfConfig(family, { module: module as "routed", keys, sharedDim, layer: 3, firstDenseLayers: 0 });
    const back = hfConfigToMaxText(hf);
    expect(back.family).toBe(family);
    expect(back.moeLayers).toContain(3);
    expect(semanticDifferences(moeConfig(back.keys), cfg)).toEqual([]);
  });

  it("refuses keys the family cannot express (kimi-k2's generic top-k on biased scores is not DeepSeek-V3's rule)", () => {
    const keys = getPreset("kimi-k2-1t").keys;
    const cfg = moeConfig(keys);
    expect(() =>
      maxTextToHfConfig("deepseek_v3", { module: "routed_and_shared", keys, sharedDim: cfg.moeMlpDim, layer: 0, firstDenseLayers: 0 }),
    ).toThrow(/routing rule/);
    expect(() =>
      maxTextToHfConfig("mixtral", {
        module: "routed",
        keys: getPreset("qwen3-30b-a3b").keys,
        sharedDim: 0,
        layer: 0,
        firstDenseLayers: 0,
      }),
    ).not.toThrow();
    expect(() =>
      maxTextToHfConfig("mixtral", {
        module: "routed",
        keys: hfConfigToMaxText(makeFixture("olmoe").config).keys,
        sharedDim: 0,
        layer: 0,
        firstDenseLayers: 0,
      }),
    ).toThrow(/cannot express/);
  });
});
