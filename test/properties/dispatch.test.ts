import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { tensor } from "../../src/core/tensor.js";
import { moeConfig } from "../../src/moe/config.js";
import { capacityMasks, expertCapacity } from "../../src/moe/dispatch.js";
import { Rng } from "../harness/random.js";
import { assertExact } from "../harness/tolerance.js";
import { range } from "../harness/naive.js";

const RUNS = { seed: 42, numRuns: 80 };

interface Case {
  G: number;
  T: number;
  E: number;
  K: number;
  cf: number;
  /** [G][T] -> K distinct experts */
  topk: number[][][];
  seed: number;
}

const caseArb: fc.Arbitrary<Case> = fc
  .record({
    G: fc.integer({ min: 1, max: 3 }),
    T: fc.integer({ min: 1, max: 6 }),
    E: fc.integer({ min: 1, max: 5 }),
    cf: fc.constantFrom(0.25, 0.5, 1, 1.5, 2, 3),
    seed: fc.nat(),
  })
  .chain((d) =>
    fc.integer({ min: 1, max: d.E }).chain((K) =>
      fc
        .array(fc.array(fc.shuffledSubarray(range(d.E), { minLength: K, maxLength: K }), { minLength: d.T, maxLength: d.T }), {
          minLength: d.G,
          maxLength: d.G,
        })
        .map((topk) => ({ ...d, K, topk })),
    ),
  );

describe("capacityMasks", () => {
  it("capacity is int(max(ceil(T·K/E)·cf, cf)) per group", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 16 }), fc.constantFrom(0.25, 0.5, 1, 1.25, 2), (t, e, cf) => {
        expect(expertCapacity(t, e, cf)).toBe(Math.floor(Math.max(Math.ceil(t / e) * cf, cf)));
      }),
      RUNS,
    );
  });

  it("never more than C tokens per expert per group; kept choices are exactly the first C per expert in token-major order", () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const cfg = moeConfig({
          num_experts: c.E,
          num_experts_per_tok: c.K,
          dtype: "float32",
          capacity_factor: c.cf,
          decoder_block: "mixtral",
        });
        const topK = tensor(c.topk.flat(2), [c.G, c.T, c.K], "int32");
        // strictly positive probabilities, so dispatch (combine != 0) marks every kept choice
        const probs = new Rng(c.seed).uniform([c.G, c.T, c.E], 0.05, 1, "float32");
        const m = capacityMasks(cfg, topK, probs);
        const C = Math.floor(Math.max(Math.ceil((c.T * c.K) / c.E) * c.cf, c.cf));
        expect(m.capacity).toBe(C);
        expect(m.dispatch.shape).toEqual([c.G, c.T, c.E, C]);
        // naive: walk the (t, k) choices token-major, counting per expert
        const kept: number[] = [];
        const dispatch = new Array<number>(c.G * c.T * c.E * C).fill(0);
        const combine = new Array<number>(c.G * c.T * c.E * C).fill(0);
        for (let g = 0; g < c.G; g++) {
          const count = new Array<number>(c.E).fill(0);
          for (let t = 0; t < c.T; t++) {
            for (let k = 0; k < c.K; k++) {
              const e = c.topk[g]![t]![k]!;
              const pos = ++count[e]!;
              kept.push(pos <= C ? 1 : 0);
              if (pos <= C) {
                const at = ((g * c.T + t) * c.E + e) * C + (pos - 1);
                dispatch[at] = 1;
                combine[at] = probs.data[(g * c.T + t) * c.E + e]!;
              }
            }
          }
        }
        assertExact(m.kept, kept, "kept");
        assertExact(m.dispatch, dispatch, "dispatch");
        assertExact(m.combine, combine, "combine");
        // the capacity bound itself, and one token per slot
        for (let g = 0; g < c.G; g++) {
          for (let e = 0; e < c.E; e++) {
            let perExpert = 0;
            for (let s = 0; s < C; s++) {
              let perSlot = 0;
              for (let t = 0; t < c.T; t++) perSlot += m.dispatch.data[((g * c.T + t) * c.E + e) * C + s]!;
              expect(perSlot).toBeLessThanOrEqual(1);
              perExpert += perSlot;
            }
            expect(perExpert).toBeLessThanOrEqual(C);
          }
        }
      }),
      RUNS,
    );
  });

  it("with capacity ≥ T·K nothing is dropped", () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const cf = c.T * c.K; // ceil(T·K/E)·cf ≥ T·K
        const cfg = moeConfig({
          num_experts: c.E,
          num_experts_per_tok: c.K,
          dtype: "float32",
          capacity_factor: cf,
          decoder_block: "mixtral",
        });
        const probs = new Rng(c.seed).uniform([c.G, c.T, c.E], 0.05, 1, "float32");
        const m = capacityMasks(cfg, tensor(c.topk.flat(2), [c.G, c.T, c.K], "int32"), probs);
        expect(Array.from(m.kept.data).every((v) => v === 1)).toBe(true);
        expect(Array.from(m.dispatch.data).reduce((a, b) => a + b, 0)).toBe(c.G * c.T * c.K);
      }),
      { seed: 42, numRuns: 40 },
    );
  });
});
