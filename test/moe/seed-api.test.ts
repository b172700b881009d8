// The seed's functions under their camelCase names, with hand-derived expectations (as MaxText's own unit tests would hold them).
import { describe, expect, it } from "vitest";
import { tensor } from "../../src/core/tensor.js";
import { moeConfig } from "../../src/moe/config.js";
import { RoutedMoE } from "../../src/moe/routed-moe.js";
import { calculateLoadBalanceUpdates } from "../../src/moe/load-balance.js";
import { GateLogit } from "../../src/moe/gate-logit.js";
import { prngKey } from "../../src/nn/random.js";

const i32 = (v: number[], shape: number[]) => tensor(v, shape, "int32");

describe("seed API", () => {
  const moe = new RoutedMoE(
    moeConfig({ num_experts: 4, num_experts_per_tok: 2, emb_dim: 4, moe_mlp_dim: 4, capacity_factor: 1, dtype: "float32" }),
  );

  it("generateMasks: the seed's docstring example (routes [0,1] and [1,3], capacity 1)", () => {
    const idx = i32([0, 1, 1, 3], [1, 2, 2]);
    const w = tensor([0.6, 0.4, 0, 0, 0, 0.7, 0, 0.3], [1, 2, 4]);
    const [dispatch, combine] = moe.generateMasks(idx, w);
    expect(combine.shape).toEqual([1, 2, 4, 1]);
    expect(Array.from(combine.data).map((v) => Number(v.toFixed(6)))).toEqual([0.6, 0.4, 0, 0, 0, 0, 0, 0.3]);
    expect(Array.from(dispatch.data)).toEqual([1, 1, 0, 0, 0, 0, 0, 1]);
  });

  it("getAllToAllParams: batch sharded and replicated", () => {
    const A = i32([1, 2, 3, 4], [2, 2]);
    expect(RoutedMoE.getAllToAllParams(A, 0, 2)).toEqual([
      [0, 1],
      [1, 2],
      [0, 0],
      [1, 3],
    ]);
    expect(RoutedMoE.getAllToAllParams(A, 1, 2)).toEqual([
      [0, 3],
      [3, 4],
      [1, 2],
      [2, 4],
    ]);
    expect(RoutedMoE.getAllToAllParams(i32([5, 7], [2]), 1, 2, false)).toEqual([
      [0, 0],
      [7, 7],
      [5, 5],
      [5, 7],
    ]);
  });

  it("getRaggedBufferSize: worst case min(EP, E/K), or the factor", () => {
    expect(RoutedMoE.getRaggedBufferSize(64, 4, 256, 8, -1)).toBe(256);
    expect(RoutedMoE.getRaggedBufferSize(64, 128, 256, 8, -1)).toBe(2048);
    expect(RoutedMoE.getRaggedBufferSize(64, 4, 256, 8, 1.5)).toBe(96);
  });

  it("localPermute: rows regrouped by local expert, stable", () => {
    const x = tensor([10, 11, 12, 13, 14], [5, 1]);
    const [sorted, order, sizes, ids] = RoutedMoE.localPermute(x, i32([1, 2, 0, 1, 2, 0, 1, 1], [2, 4]), 2, 0);
    expect(Array.from(order.data)).toEqual([0, 3, 4, 1, 2]);
    expect(Array.from(sorted.data)).toEqual([10, 13, 14, 11, 12]);
    expect(Array.from(sizes.data)).toEqual([3, 2]);
    expect(Array.from(ids.data)).toEqual([0, 0, 0, 1, 1]);
  });

  it("localPermute(isOffset): rows of other shards get id local_expert_size and go last", () => {
    const x = tensor([0, 1, 2, 3, 4, 5], [6, 1]);
    const global = i32([0, 0, 1, 2, 2, 3], [6]);
    const [sorted, , sizes, ids] = RoutedMoE.localPermute(x, i32([2, 1, 2, 1], [1, 4]), 2, 1, true, global);
    expect(Array.from(sorted.data)).toEqual([3, 4, 5, 0, 1, 2]);
    expect(Array.from(ids.data)).toEqual([0, 0, 1, 2, 2, 2]);
    expect(Array.from(sizes.data)).toEqual([2, 1]);
  });

  it("calculateLoadBalanceUpdates: rate · sign(T·K/E − count)", () => {
    const u = calculateLoadBalanceUpdates(i32([0, 0, 0, 1, 2, 1], [1, 3, 2]), 4, 0.01);
    expect(Array.from(u.data).map((v) => Number(v.toFixed(6)))).toEqual([-0.01, -0.01, 0.01, 0.01]);
  });

  it("reshapeAndUpdateWeights and getContextPartitionAndSubSeq", () => {
    const w = moe.reshapeAndUpdateWeights(tensor([0.7, 0.3], [1, 1, 2]), i32([3, 1], [1, 1, 2]));
    expect(Array.from(w.data).map((v) => Number(v.toFixed(6)))).toEqual([0, 0.3, 0, 0.7]);
    expect(moe.getContextPartitionAndSubSeq(8)).toEqual([1, 8]);
  });

  it("GateLogit module: kernel [D,E], bias, pre-bias scores for deepseek3", () => {
    const g = new GateLogit({
      inFeatures: 3,
      outFeatures: 4,
      modelName: "deepseek3-test",
      useBias: true,
      scoreFunc: "sigmoid",
      key: prngKey(1),
    });
    expect(g.parameters().map(([p, t]) => [p, t.shape])).toEqual([
      ["kernel", [3, 4]],
      ["bias", [4]],
    ]);
    g.loadParameters({ bias: tensor([1, 0, 0, 0], [4]) });
    const [logits, pre] = g.forward(tensor([0, 0, 0], [1, 1, 3]));
    expect(Array.from(pre!.data)).toEqual([0.5, 0.5, 0.5, 0.5]);
    expect(Array.from(logits.data)).toEqual([1.5, 0.5, 0.5, 0.5]);
  });
});
