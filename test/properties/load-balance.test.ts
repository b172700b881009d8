import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { tensor, type Tensor } from "../../src/core/tensor.js";
import { moeConfig, type MoeConfig } from "../../src/moe/config.js";
import { calculateLoadBalanceUpdates, loadBalanceLoss } from "../../src/moe/load-balance.js";
import { Rng } from "../harness/random.js";
import { range } from "../harness/naive.js";

const RUNS = { seed: 42, numRuns: 80 };

const cfgOf = (E: number, K: number, w: number): MoeConfig =>
  moeConfig({ num_experts: E, num_experts_per_tok: K, dtype: "float64", weight_dtype: "float64", load_balance_loss_weight: w });

/** mean_{b,e}(density · density_prob) · E² · w, density = count/S per batch row (K choices per token), density_prob = mean_S p */
function naiveLoss(topk: number[][][], probs: number[][][], E: number, w: number): number {
  let acc = 0;
  for (let b = 0; b < topk.length; b++) {
    const S = topk[b]!.length;
    for (let e = 0; e < E; e++) {
      let count = 0;
      let p = 0;
      for (let s = 0; s < S; s++) {
        count += topk[b]![s]!.filter((v) => v === e).length;
        p += probs[b]![s]![e]!;
      }
      acc += (count / S) * (p / S);
    }
  }
  return (acc / (topk.length * E)) * E * E * w;
}

const t3 = (xs: number[][][], dtype: "int32" | "float64"): Tensor =>
  tensor(xs.flat(2), [xs.length, xs[0]!.length, xs[0]![0]!.length], dtype);

/** token s picks experts (s·K + k) mod E: every expert is picked S·K/E times when E divides S·K */
const roundRobin = (B: number, S: number, E: number, K: number): number[][][] =>
  range(B).map(() => range(S).map((s) => range(K).map((k) => (s * K + k) % E)));
const uniformProbs = (B: number, S: number, E: number): number[][][] =>
  range(B).map(() => range(S).map(() => new Array<number>(E).fill(1 / E)));

describe("loadBalanceLoss", () => {
  it("uniform probabilities and uniform counts give exactly weight·K (from E²·w·mean_{b,e}((K/E)·(1/E)))", () => {
    for (const [B, S, E, K, w] of [
      [1, 4, 4, 1, 0.01],
      [2, 6, 3, 2, 0.5],
      [2, 8, 8, 4, 1],
      [3, 5, 5, 5, 0.1],
    ] as const) {
      const topk = roundRobin(B, S, E, K);
      const loss = loadBalanceLoss(cfgOf(E, K, w), t3(topk, "int32"), t3(uniformProbs(B, S, E), "float64")).item();
      expect(Math.abs(loss - w * K)).toBeLessThan(1e-14);
      expect(Math.abs(naiveLoss(topk, uniformProbs(B, S, E), E, w) - w * K)).toBeLessThan(1e-14);
    }
  });

  it("skewed routing (every token to expert 0, p = [0.7, 0.1, 0.1, 0.1]) gives 2.8·w > w·K", () => {
    const w = 0.01;
    const topk = [range(4).map(() => [0])];
    const probs = [range(4).map(() => [0.7, 0.1, 0.1, 0.1])];
    const loss = loadBalanceLoss(cfgOf(4, 1, w), t3(topk, "int32"), t3(probs, "float64")).item();
    // density = [1,0,0,0], density_prob = [0.7,0.1,0.1,0.1]: mean = 0.7/4, times E² = 16
    expect(Math.abs(loss - 2.8 * w)).toBeLessThan(1e-15);
    expect(loss).toBeGreaterThan(w * 1);
  });

  it("matches the naive formula for arbitrary routing and probabilities", () => {
    fc.assert(
      fc.property(
        fc.record({
          B: fc.integer({ min: 1, max: 3 }),
          S: fc.integer({ min: 1, max: 6 }),
          E: fc.integer({ min: 1, max: 6 }),
          seed: fc.nat(),
          w: fc.constantFrom(0.001, 0.01, 1),
        }),
        fc.integer({ min: 1, max: 6 }),
        ({ B, S, E, seed, w }, k0) => {
          const K = Math.min(k0, E);
          const rng = new Rng(seed);
          const ids = rng.randint([B, S, K], 0, E).data;
          const p = rng.uniform([B, S, E], 0, 1).data;
          const topk = range(B).map((b) => range(S).map((s) => range(K).map((k) => ids[(b * S + s) * K + k]!)));
          const probs = range(B).map((b) => range(S).map((s) => range(E).map((e) => p[(b * S + s) * E + e]!)));
          const loss = loadBalanceLoss(cfgOf(E, K, w), t3(topk, "int32"), t3(probs, "float64")).item();
          const want = naiveLoss(topk, probs, E, w);
          expect(Math.abs(loss - want)).toBeLessThanOrEqual(1e-13 * Math.max(1, Math.abs(want)));
        },
      ),
      RUNS,
    );
  });

  it("with uniform probabilities the loss is weight·K for any routing (Σ_e density_e = K)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 6 }),
        fc.nat(),
        (B, S, E, seed) => {
          const K = 1 + (seed % E);
          const ids = new Rng(seed).randint([B, S, K], 0, E);
          const loss = loadBalanceLoss(cfgOf(E, K, 0.5), ids, t3(uniformProbs(B, S, E), "float64")).item();
          expect(Math.abs(loss - 0.5 * K)).toBeLessThan(1e-13);
        },
      ),
      RUNS,
    );
  });

  it("concentrating both counts and probability on one expert raises the loss above the balanced value", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 6 }),
        fc.integer({ min: 1, max: 4 }),
        fc.double({ min: 0.05, max: 0.95, noNaN: true }),
        (E, sMul, extra) => {
          const S = E * sMul;
          const w = 0.01;
          const balanced = loadBalanceLoss(
            cfgOf(E, 1, w),
            t3(roundRobin(1, S, E, 1), "int32"),
            t3(uniformProbs(1, S, E), "float64"),
          ).item();
          // every token to expert 0 with probability mass shifted toward it
          const p0 = 1 / E + extra * (1 - 1 / E);
          const probs = [range(S).map(() => range(E).map((e) => (e === 0 ? p0 : (1 - p0) / (E - 1))))];
          const skewed = loadBalanceLoss(cfgOf(E, 1, w), t3([range(S).map(() => [0])], "int32"), t3(probs, "float64")).item();
          expect(skewed).toBeGreaterThan(balanced);
          expect(Math.abs(skewed - w * E * p0)).toBeLessThan(1e-14);
        },
      ),
      RUNS,
    );
  });

  it("calculateLoadBalanceUpdates: rate · sign(T·K/E − count_e), exact", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 20 }), fc.constantFrom(0.001, 0.5), (ids, rate) => {
        const E = 5;
        const upd = calculateLoadBalanceUpdates(tensor(ids, [ids.length], "int32"), E, rate);
        const want = range(E).map((e) => Math.sign(ids.length / E - ids.filter((v) => v === e).length) * rate);
        expect(Array.from(upd.data)).toEqual(want.map((v) => Math.fround(v)));
      }),
      RUNS,
    );
  });
});
