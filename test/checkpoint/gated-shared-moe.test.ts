// GatedSharedMoE: routed experts + sigmoid(x·w_g) ⊙ shared MLP (Qwen2-MoE / Qwen3-Next).
import { describe, expect, it } from "vitest";
import { Tensor } from "../../src/core/tensor.js";
import { moeConfig } from "../../src/moe/config.js";
import { GatedSharedMoE, gatedSharedMoeForward } from "../../src/moe/gated-shared-moe.js";
import { mlpForward } from "../../src/moe/shared-mlp.js";
import { RoutedMoE } from "../../src/moe/routed-moe.js";
import { MlpBlock } from "../../src/nn/mlp.js";
import { foldIn, normal, prngKey } from "../../src/nn/random.js";

const cfg = moeConfig({
  num_experts: 4,
  num_experts_per_tok: 2,
  emb_dim: 16,
  moe_mlp_dim: 24,
  mlp_dim: 24,
  dtype: "float64",
  weight_dtype: "float64",
  decoder_block: "qwen3_next",
  norm_topk_prob: true,
});

describe("GatedSharedMoE", () => {
  const m = new GatedSharedMoE(cfg, { sharedDim: 20, key: prngKey(3) });
  const x = normal(foldIn(prngKey(4), 1), [2, 3, 16], "float64");

  it("parameter paths and shapes follow MaxText's Qwen3NextSparseMoeBlock", () => {
    const shapes = Object.fromEntries(m.parameters().map(([p, t]) => [p, t.shape]));
    expect(shapes).toEqual({
      "routed_experts/gate/kernel": [16, 4],
      "routed_experts/wi_0": [4, 16, 24],
      "routed_experts/wi_1": [4, 16, 24],
      "routed_experts/wo": [4, 24, 16],
      "shared_expert/wi_0/kernel": [16, 20],
      "shared_expert/wi_1/kernel": [16, 20],
      "shared_expert/wo/kernel": [20, 16],
      "shared_expert_gate/kernel": [16, 1],
    });
  });

  it("output = routed + sigmoid(x·w_g) ⊙ shared, with the routed part equal to RoutedMoE's", () => {
    const o = m.forward(x);
    const routed = new RoutedMoE(cfg);
    routed.loadParameters(
      Object.fromEntries(
        m
          .parameters()
          .filter(([p]) => p.startsWith("routed_experts/"))
          .map(([p, t]) => [p.slice("routed_experts/".length), t]),
      ),
    );
    expect(Array.from(o.routedOutput.data)).toEqual(Array.from(routed.forward(x).output.data));
    const g = m.sharedExpertGate.data;
    for (let t = 0; t < 6; t++) {
      let z = 0;
      for (let d = 0; d < 16; d++) z += x.data[t * 16 + d]! * g[d]!;
      const s = 1 / (1 + Math.exp(-z));
      expect(o.sharedGate.data[t]!).toBeCloseTo(s, 14);
      for (let d = 0; d < 16; d++) {
        const want = o.routedOutput.data[t * 16 + d]! + s * o.sharedOutput.data[t * 16 + d]!;
        expect(Math.abs(o.output.data[t * 16 + d]! - want)).toBeLessThan(1e-12);
      }
    }
  });

  it("mlpForward equals MlpBlock.forward; loadParameters round-trips", () => {
    const mlp = new MlpBlock({
      inFeatures: 16,
      intermediateDim: 20,
      activations: ["silu", "linear"],
      dtype: "float64",
      weightDtype: "float64",
      key: prngKey(9),
    });
    expect(Array.from(mlpForward(cfg, Object.fromEntries(mlp.kernels), x).data)).toEqual(Array.from(mlp.forward(x).data));
    const other = new GatedSharedMoE(cfg, { sharedDim: 20, key: prngKey(99) });
    other.loadParameters(m.paramRecord());
    expect(Array.from(other.forward(x).output.data)).toEqual(Array.from(m.forward(x).output.data));
    expect(() =>
      gatedSharedMoeForward(cfg, { ...m.weights(), gateKernel: new Tensor(new Float64Array(16), [1, 16], "float64") }, x),
    ).toThrow(/expected \[16,1\]/);
  });
});
