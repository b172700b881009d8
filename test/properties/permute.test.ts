import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Tensor, tensor } from "../../src/core/tensor.js";
import { vjp } from "../../src/autodiff/grad.js";
import { argsort } from "../../src/ops/indexing.js";
import { moeConfig, type MoeConfig } from "../../src/moe/config.js";
import { permute, sortActivations, unpermute } from "../../src/moe/permute.js";
import { Rng } from "../harness/random.js";
import { assertAllClose, assertExact } from "../harness/tolerance.js";
import { range } from "../harness/naive.js";

const RUNS = { seed: 42, numRuns: 60 };

/** a permutation of 0..n-1 */
const permutation = (maxN: number): fc.Arbitrary<number[]> =>
  fc.integer({ min: 0, max: maxN }).chain((n) => fc.shuffledSubarray(range(n), { minLength: n, maxLength: n }));

interface Dims {
  B: number;
  S: number;
  D: number;
  E: number;
  K: number;
  seed: number;
}
const dims: fc.Arbitrary<Dims> = fc
  .record({
    B: fc.integer({ min: 1, max: 2 }),
    S: fc.integer({ min: 1, max: 5 }),
    D: fc.integer({ min: 1, max: 4 }),
    E: fc.integer({ min: 1, max: 6 }),
    seed: fc.nat(),
  })
  .chain((d) => fc.integer({ min: 1, max: d.E }).map((K) => ({ ...d, K })));

function mixtral(d: Dims, extra: Record<string, unknown> = {}): MoeConfig {
  return moeConfig({
    num_experts: d.E,
    num_experts_per_tok: d.K,
    decoder_block: "mixtral",
    dtype: "float32",
    weight_dtype: "float32",
    emb_dim: d.D,
    mlp_dim: 4,
    moe_mlp_dim: 4,
    ...extra,
  });
}

describe("sortActivations", () => {
  for (const custom of [true, false]) {
    it(`sortActivations by p then by argsort(p) is exactly the identity (useCustomVjp=${custom})`, () => {
      fc.assert(
        fc.property(permutation(12), fc.integer({ min: 1, max: 3 }), fc.nat(), (p, D, seed) => {
          const x = new Rng(seed).normal([p.length, D], "float32");
          const idx = tensor(p, [p.length], "int32");
          const sorted = sortActivations(x, idx, custom);
          // row r of the result is row p[r] of x
          assertExact(
            sorted,
            p.flatMap((r) => Array.from(x.data.subarray(r * D, (r + 1) * D))),
          );
          assertExact(sortActivations(sorted, argsort(idx), custom), x);
        }),
        RUNS,
      );
    });
  }

  it("sortActivations: the custom VJP (gather by the inverse) equals the scatter-add VJP", () => {
    fc.assert(
      fc.property(permutation(10), fc.nat(), (p, seed) => {
        const rng = new Rng(seed);
        const x = rng.normal([p.length, 2]);
        const ct = rng.normal([p.length, 2]);
        const idx = tensor(p, [p.length], "int32");
        const [a] = vjp((t: Tensor) => [sortActivations(t, idx, true)], x).pullback([ct]);
        const [b] = vjp((t: Tensor) => [sortActivations(t, idx, false)], x).pullback([ct]);
        assertExact(a!, b!);
      }),
      RUNS,
    );
  });
});

describe("permute / unpermute", () => {
  it("unpermute(identity experts(permute(x))) = Σ_k w_k x = x for mixtral routing (weights sum to 1)", () => {
    fc.assert(
      fc.property(dims, fc.boolean(), (d, custom) => {
        const cfg = mixtral(d, { use_custom_sort_vjp: custom });
        const rng = new Rng(d.seed);
        const x = rng.normal([d.B, d.S, d.D], "float32");
        const logits = rng.normal([d.B, d.S, d.E], "float32");
        const [sorted, order, weights] = permute(cfg, x, logits, undefined);
        const out = unpermute(cfg, sorted, order, weights, d.B, d.S);
        expect(out.shape).toEqual([d.B, d.S, d.D]);
        assertAllClose(out, x, { atol: 1e-6, rtol: 1e-5 }, "unpermute(permute(x))");
      }),
      RUNS,
    );
  });

  it("permute: group sizes sum to T·K, equal the per-expert counts, and sorted rows follow the sort order", () => {
    fc.assert(
      fc.property(dims, (d) => {
        const cfg = mixtral(d);
        const rng = new Rng(d.seed);
        const T = d.B * d.S;
        const x = rng.normal([d.B, d.S, d.D], "float32");
        // small-integer logits: many ties
        const logits = tensor(rng.randint([d.B, d.S, d.E], -2, 3).data, [d.B, d.S, d.E], "float32");
        const [sorted, order, , groupSize, sortedExperts, lb, bias, selected] = permute(cfg, x, logits, undefined);
        expect(lb).toBeUndefined();
        expect(bias).toBeUndefined();
        const sel = Array.from(selected.data);
        const gs = Array.from(groupSize.data);
        expect(groupSize.dtype).toBe("int32");
        expect(gs.reduce((a, b) => a + b, 0)).toBe(T * d.K);
        expect(gs).toEqual(range(d.E).map((e) => sel.filter((v) => v === e).length));
        // order is a permutation; experts of the sorted rows are non-decreasing and match the order
        const ord = Array.from(order.data);
        expect([...ord].sort((a, b) => a - b)).toEqual(range(T * d.K));
        const se = Array.from(sortedExperts.data);
        expect(se).toEqual(ord.map((r) => sel[r]));
        expect(se.every((v, i) => i === 0 || se[i - 1]! <= v)).toBe(true);
        // stable: rows of one expert keep token-major order
        expect(ord.every((v, i) => i === 0 || se[i - 1] !== se[i] || ord[i - 1]! < v)).toBe(true);
        // sorted row r is the token of routed choice order[r] = t·K + k
        assertExact(
          sorted,
          ord.flatMap((r) => {
            const t = Math.floor(r / d.K);
            return Array.from(x.data.subarray(t * d.D, (t + 1) * d.D));
          }),
        );
      }),
      RUNS,
    );
  });

  it("permute: rollToExpertId rotates expert ids so group sizes are the rolled counts", () => {
    fc.assert(
      fc.property(dims, fc.nat(), (d, shift) => {
        const cfg = mixtral(d);
        const rng = new Rng(d.seed);
        const roll = shift % d.E;
        const x = rng.normal([d.B, d.S, d.D], "float32");
        const logits = rng.normal([d.B, d.S, d.E], "float32");
        const [, , , gsPlain] = permute(cfg, x, logits, undefined);
        const [, , , gsRolled, sortedExperts] = permute(cfg, x, logits, undefined, { rollToExpertId: roll });
        const plain = Array.from(gsPlain.data);
        expect(Array.from(gsRolled.data)).toEqual(range(d.E).map((e) => plain[(e + roll) % d.E]));
        const se = Array.from(sortedExperts.data);
        expect(se.every((v, i) => i === 0 || se[i - 1]! <= v)).toBe(true);
      }),
      RUNS,
    );
  });
});
