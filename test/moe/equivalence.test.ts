import { describe, expect, it } from "vitest";
import type { Tensor } from "../../src/core/tensor.js";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { add, mul } from "../../src/ops/elementwise.js";
import { sum } from "../../src/ops/reduce.js";
import { routedMoeForward, type RoutedMoeWeights } from "../../src/moe/routed-moe.js";
import { normal, prngKey } from "../../src/nn/random.js";
import { expert, moeLoop, type LoopWeights } from "../reference/moe-loop.js";
import { reshape, sliceAxis } from "../../src/ops/movement.js";
import { cfg64, randomInput, randomWeights, ROUTING_CONFIGS, scaledError, type Dims } from "./setup.js";

const dims: Dims = { B: 2, S: 3, D: 5, H: 4 };
const NAMES = ["x", "gateKernel", "gateBias", "wi0", "wi1", "wo", "wi0Bias", "wi1Bias", "woBias", "perExpertScale"] as const;

function args(w: RoutedMoeWeights, x: Tensor): { names: string[]; values: Tensor[] } {
  const all: Record<string, Tensor | undefined> = { x, ...w };
  const names = NAMES.filter((n) => all[n] !== undefined);
  return { names, values: names.map((n) => all[n]!) };
}

function unpack(names: string[], vals: Tensor[]): { x: Tensor; w: RoutedMoeWeights } {
  const { x, ...w } = Object.fromEntries(names.map((n, i) => [n, vals[i]!])) as unknown as RoutedMoeWeights & { x: Tensor };
  return { x, w };
}

describe.each(Object.entries(ROUTING_CONFIGS))("sparse == dense == per-token loop: %s", (_name, keys) => {
  const cfgSparse = cfg64({ ...keys, sparse_matmul: true, load_balance_loss_weight: 0.01 });
  const cfgDense = cfg64({ ...keys, sparse_matmul: false, load_balance_loss_weight: 0.01 });
  const w = randomWeights(cfgSparse, dims, 3);
  const x = randomInput(cfgSparse, dims, 4);
  const ct = normal(prngKey(5), [dims.B, dims.S, dims.D], "float64");
  const { names, values } = args(w, x);

  const objective =
    (which: "sparse" | "dense" | "loop", withLoss: boolean) =>
    (...vals: Tensor[]): Tensor => {
      const { x: xx, w: ww } = unpack(names, vals);
      if (which === "loop") return sum(mul(moeLoop(cfgSparse, ww as LoopWeights, xx), ct));
      const o = routedMoeForward(which === "sparse" ? cfgSparse : cfgDense, ww, xx);
      const base = sum(mul(o.output, ct));
      return withLoss && o.lbLoss !== undefined ? add(base, o.lbLoss) : base;
    };

  it("forward outputs agree", () => {
    const s = routedMoeForward(cfgSparse, w, x);
    const d = routedMoeForward(cfgDense, w, x);
    const l = moeLoop(cfgSparse, w as LoopWeights, x);
    expect(scaledError(s.output, l)).toBeLessThan(1e-12);
    expect(scaledError(d.output, l)).toBeLessThan(1e-12);
    expect(Array.from(s.topKIndices_BSK.data)).toEqual(Array.from(d.topKIndices_BSK.data));
    expect(scaledError(s.lbLoss!, d.lbLoss!)).toBeLessThan(1e-12);
  });

  it("every gradient agrees (output part, against the loop)", () => {
    const gs = valueAndGrad(objective("sparse", false))(...values).grads;
    const gd = valueAndGrad(objective("dense", false))(...values).grads;
    const gl = valueAndGrad(objective("loop", false))(...values).grads;
    names.forEach((n, i) => {
      expect(scaledError(gs[i]!, gl[i]!), `sparse grad ${n}`).toBeLessThan(1e-11);
      expect(scaledError(gd[i]!, gl[i]!), `dense grad ${n}`).toBeLessThan(1e-11);
    });
  });

  it("gradients including lb_loss agree between sparse and dense", () => {
    const gs = valueAndGrad(objective("sparse", true))(...values).grads;
    const gd = valueAndGrad(objective("dense", true))(...values).grads;
    names.forEach((n, i) => expect(scaledError(gs[i]!, gd[i]!), `grad ${n}`).toBeLessThan(1e-11));
  });
});

describe("dense capacity path", () => {
  it("a capacity that drops nothing equals the dropless sparse path", () => {
    const keys = { decoder_block: "mixtral", num_experts: 4, num_experts_per_tok: 2 };
    const cfgS = cfg64(keys);
    const cfgC = cfg64({ ...keys, sparse_matmul: false, capacity_factor: 100 });
    const w = randomWeights(cfgS, dims, 7);
    const x = randomInput(cfgS, dims, 8);
    const c = routedMoeForward(cfgC, w, x);
    expect(Array.from(c.keptMask_BSK!.data).every((v) => v === 1)).toBe(true);
    expect(scaledError(c.output, routedMoeForward(cfgS, w, x).output)).toBeLessThan(1e-12);
  });

  it("dropped choices contribute nothing: output = sum over kept choices only", () => {
    const d = { B: 1, S: 6, D: 4, H: 3 };
    const cfgC = cfg64({ decoder_block: "mixtral", num_experts: 3, num_experts_per_tok: 2, sparse_matmul: false, capacity_factor: 0.5 });
    const w = randomWeights(cfgC, d, 9);
    const x = randomInput(cfgC, d, 10);
    const o = routedMoeForward(cfgC, w, x);
    // capacity per sequence is int(max(ceil(6*2/3)*0.5, 0.5)) = 2; first two choices per expert kept
    expect(o.expertCapacity).toBe(2);
    const idx = Array.from(o.topKIndices_BSK.data);
    const kept = Array.from(o.keptMask_BSK!.data);
    const counts = new Map<number, number>();
    idx.forEach((e, i) => {
      const c = (counts.get(e) ?? 0) + 1;
      counts.set(e, c);
      expect(kept[i]).toBe(c <= 2 ? 1 : 0);
    });
    expect(kept.some((v) => v === 0)).toBe(true);
    const xs = reshape(x, [d.S, d.D]);
    for (let t = 0; t < d.S; t++) {
      const want = new Array<number>(d.D).fill(0);
      for (let j = 0; j < 2; j++) {
        if (kept[t * 2 + j] === 0) continue;
        const y = expert(cfgC, w as LoopWeights, idx[t * 2 + j]!, sliceAxis(xs, 0, t, t + 1));
        y.data.forEach((v, q) => (want[q] = want[q]! + v * o.topKWeights_BSK.data[t * 2 + j]!));
      }
      want.forEach((v, q) => expect(o.output.data[t * d.D + q]).toBeCloseTo(v, 12));
    }
  });
});
