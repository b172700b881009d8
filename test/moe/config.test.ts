import { describe, expect, it } from "vitest";
import { MOE_DEFAULTS, moeConfig, parseMoeConfig, toMaxTextKeys } from "../../src/moe/config.js";
import { refused } from "../harness/config.js";

describe("MoE config", () => {
  it("fills MaxText's base defaults and camelCases every key", () => {
    const c = moeConfig({});
    expect(c.numExperts).toBe(1);
    expect(c.capacityFactor).toBe(-1);
    expect(c.sparseMatmul).toBe(true);
    expect(c.mlpActivations).toEqual(["silu", "linear"]);
    expect(c.dtype).toBe("bfloat16");
    expect(c.weightDtype).toBe("float32");
    expect(Object.keys(toMaxTextKeys(c)).sort()).toEqual(Object.keys(MOE_DEFAULTS).sort());
  });

  it("accepts camelCase keys and YAML text", () => {
    expect(moeConfig({ numExperts: 4, num_experts_per_tok: 2 }).numExperts).toBe(4);
    const c = parseMoeConfig("num_experts: 8\nnum_experts_per_tok: 2\nmlp_activations: [gelu, linear]\n");
    expect(c.numExperts).toBe(8);
    expect(c.mlpActivations).toEqual(["gelu", "linear"]);
  });

  it("derives expertInputDim and isDeepseek3", () => {
    expect(moeConfig({ emb_dim: 64 }).expertInputDim).toBe(64);
    expect(moeConfig({ emb_dim: 64, moe_expert_input_dim: 24 }).expertInputDim).toBe(24);
    expect(moeConfig({ model_name: "deepseek3-671b", routed_score_func: "sigmoid" }).isDeepseek3).toBe(true);
    expect(moeConfig({ model_name: "kimi-k2-1t" }).isDeepseek3).toBe(false);
  });

  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ["unknown key with a suggestion", { num_expert: 4 }, "num_expert", /did you mean num_experts/],
    ["wrong type", { num_experts: "8" }, "num_experts", /must be a number/],
    ["non-integer count", { num_experts: 2.5 }, "num_experts", /integer/],
    ["zero experts", { num_experts: 0 }, "num_experts", />= 1/],
    ["k > E", { num_experts: 4, num_experts_per_tok: 5 }, "num_experts_per_tok", /<= num_experts/],
    ["unknown decoder", { decoder_block: "gpt5" }, "decoder_block", /unknown/],
    ["unknown activation", { mlp_activations: ["swiglu", "linear"] }, "mlp_activations", /unknown activation "swiglu"/],
    ["empty activations", { mlp_activations: [] }, "mlp_activations", /at least one/],
    ["unknown score function", { routed_score_func: "sparsemax" }, "routed_score_func", /unknown score/],
    ["deepseek3 without score function", { model_name: "deepseek3-671b" }, "routed_score_func", /needs a score function/],
    [
      "groups not dividing E",
      { model_name: "deepseek3-x", routed_score_func: "sigmoid", num_experts: 10, n_routing_groups: 4, topk_routing_group: 2 },
      "n_routing_groups",
      /divide/,
    ],
    [
      "groups of one expert",
      { model_name: "deepseek3-x", routed_score_func: "sigmoid", num_experts: 4, n_routing_groups: 4, topk_routing_group: 2 },
      "n_routing_groups",
      />= 2 experts/,
    ],
    [
      "topk groups out of range",
      { model_name: "deepseek3-x", routed_score_func: "sigmoid", num_experts: 8, n_routing_groups: 4, topk_routing_group: 5 },
      "topk_routing_group",
      /\[1, n_routing_groups=4\]/,
    ],
    [
      "k larger than the selected groups hold",
      {
        model_name: "deepseek3-x",
        routed_score_func: "sigmoid",
        num_experts: 8,
        num_experts_per_tok: 5,
        n_routing_groups: 4,
        topk_routing_group: 2,
      },
      "num_experts_per_tok",
      /top 2 groups/,
    ],
    ["llama4 with k > 1", { decoder_block: "llama4", num_experts: 4, num_experts_per_tok: 2 }, "num_experts_per_tok", /llama4/],
    [
      "llama4 dropping in training",
      { decoder_block: "llama4", num_experts: 4, sparse_matmul: false, capacity_factor: 1 },
      "capacity_factor",
      /llama4/,
    ],
    [
      "dense inference capacity + mlp_bias",
      { sparse_matmul: false, capacity_factor: 1, model_call_mode: "inference", mlp_bias: true },
      "mlp_bias",
      /wrong axis/,
    ],
    ["gpt_oss without a clamp limit", { decoder_block: "gpt_oss" }, "mlp_activations_limit", /> 0/],
    ["unknown call mode", { model_call_mode: "serve" }, "model_call_mode", /inference/],
    ["negative shared experts", { shared_experts: -1 }, "shared_experts", />= 0/],
    ["dropout out of range", { dropout_rate: 1 }, "dropout_rate", /\[0, 1\)/],
    ["vLLM path", { attention: "vllm_rpa" }, "attention", /vLLM/],
    ["bad dtype", { dtype: "int8" }, "dtype", /float32, bfloat16/],
    ["EP not dividing E", { num_experts: 6, ici_expert_parallelism: 4 }, "ici_expert_parallelism", /divide/],
    ["padded mlp dim", { moe_mlp_dim: 64, padded_base_moe_mlp_dim: 128 }, "padded_base_moe_mlp_dim", /vLLM/],
    ["bad precision", { matmul_precision: "ultra" }, "matmul_precision", /Precision/],
  ];
  it.each(cases)("refuses %s, naming the key", (_n, keys, key, why) => refused(keys, key, why));

  it("non-strict mode ignores keys the layer does not read (a whole MaxText YAML)", () => {
    expect(moeConfig({ base_num_decoder_layers: 32, num_experts: 2 }, { strict: false }).numExperts).toBe(2);
  });

  it("is frozen", () => {
    const c = moeConfig({});
    expect(() => {
      (c as unknown as Record<string, unknown>).numExperts = 3;
    }).toThrow();
  });
});
