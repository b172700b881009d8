import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { tensor, type Tensor } from "../../src/core/tensor.js";
import { topK } from "../../src/ops/indexing.js";
import { moeConfig } from "../../src/moe/config.js";
import { getTopk } from "../../src/moe/routing.js";
import { Rng } from "../harness/random.js";
import { assertAllClose, assertExact } from "../harness/tolerance.js";
import { range } from "../harness/naive.js";

const RUNS = { seed: 42, numRuns: 80 };

/** stable top-k by a full sort: value descending, index ascending */
function naiveTopKIndices(row: readonly number[], k: number): number[] {
  return range(row.length)
    .sort((a, b) => row[b]! - row[a]! || a - b)
    .slice(0, k);
}

const rowsOf = (t: Tensor, n: number): number[][] => range(t.size / n).map((r) => Array.from(t.data.subarray(r * n, (r + 1) * n)));

interface Shape {
  B: number;
  S: number;
  E: number;
  K: number;
  seed: number;
  ties: boolean;
}
const shape: fc.Arbitrary<Shape> = fc
  .record({
    B: fc.integer({ min: 1, max: 2 }),
    S: fc.integer({ min: 1, max: 4 }),
    E: fc.integer({ min: 1, max: 8 }),
    seed: fc.nat(),
    ties: fc.boolean(),
  })
  .chain((d) => fc.integer({ min: 1, max: d.E }).map((K) => ({ ...d, K })));

function logitsFor(d: Shape, lo = -3, hi = 3): Tensor {
  const rng = new Rng(d.seed);
  const s = [d.B, d.S, d.E];
  return d.ties ? tensor(rng.randint(s, lo, hi + 1).data, s, "float32") : rng.uniform(s, lo, hi, "float32");
}

describe("top_k tie-breaking", () => {
  it("top_k: ties break to the lowest index; values are the row's k largest, descending", () => {
    fc.assert(
      fc.property(
        fc
          .array(fc.integer({ min: -2, max: 2 }), { minLength: 1, maxLength: 12 })
          .chain((row) => fc.tuple(fc.constant(row), fc.integer({ min: 0, max: row.length }))),
        ([row, k]) => {
          const [v, i] = topK(tensor(row, [row.length], "float32"), k);
          const want = naiveTopKIndices(row, k);
          expect(Array.from(i.data)).toEqual(want);
          expect(Array.from(v.data)).toEqual(want.map((j) => row[j]));
        },
      ),
      RUNS,
    );
  });
});

describe("getTopk (non-random routing)", () => {
  const BLOCKS: readonly [string, Record<string, unknown>][] = [
    ["mixtral (softmax over the top-k logits)", { decoder_block: "mixtral" }],
    ["qwen3_moe + norm_topk_prob", { decoder_block: "qwen3_moe", norm_topk_prob: true }],
    ["gemma4 + norm_topk_prob (softmax probs at the top-k)", { decoder_block: "gemma4", norm_topk_prob: true }],
    ["deepseek + sigmoid scores (renormalised)", { decoder_block: "deepseek", routed_score_func: "sigmoid" }],
    ["llama2 default", {}],
  ];
  for (const [name, keys] of BLOCKS) {
    it(`${name}: each row holds K distinct in-range expert ids, the stable top-K of the logits, and weights sum to 1`, () => {
      fc.assert(
        fc.property(shape, (d) => {
          const cfg = moeConfig({ num_experts: d.E, num_experts_per_tok: d.K, dtype: "float32", ...keys });
          // deepseek's sigmoid path expects scores in (0,1)
          const logits =
            keys.routed_score_func === "sigmoid"
              ? tensor(
                  logitsFor(d).data.map((v) => 1 / (1 + Math.exp(-v))),
                  [d.B, d.S, d.E],
                  "float32",
                )
              : logitsFor(d);
          const [w, idx] = getTopk(cfg, logits, undefined);
          expect(idx.shape).toEqual([d.B, d.S, d.K]);
          expect(idx.dtype).toBe("int32");
          const lrows = rowsOf(logits, d.E);
          rowsOf(idx, d.K).forEach((row, r) => {
            expect(new Set(row).size).toBe(d.K);
            expect(row.every((e) => e >= 0 && e < d.E)).toBe(true);
            expect(row).toEqual(naiveTopKIndices(lrows[r]!, d.K));
          });
          rowsOf(w, d.K).forEach((row) => {
            expect(row.every((v) => v >= 0)).toBe(true);
            expect(Math.abs(row.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(2e-6);
          });
        }),
        RUNS,
      );
    });
  }

  it("mixtral weights are softmax(top-K logit values) computed naively", () => {
    fc.assert(
      fc.property(shape, (d) => {
        const cfg = moeConfig({ num_experts: d.E, num_experts_per_tok: d.K, dtype: "float32", decoder_block: "mixtral" });
        const logits = logitsFor(d);
        const [w] = getTopk(cfg, logits, undefined);
        const want = rowsOf(logits, d.E).flatMap((row) => {
          const top = naiveTopKIndices(row, d.K).map((j) => row[j]!);
          const m = Math.max(...top);
          const z = top.reduce((a, v) => a + Math.exp(v - m), 0);
          return top.map((v) => Math.exp(v - m) / z);
        });
        assertAllClose(w, want, { atol: 1e-7, rtol: 1e-6 });
      }),
      RUNS,
    );
  });

  it("random routing: injected ids pass through and weights are the gate values at those ids", () => {
    fc.assert(
      fc.property(shape, (d) => {
        const cfg = moeConfig({ num_experts: d.E, num_experts_per_tok: d.K, dtype: "float32", use_random_routing: true });
        const logits = logitsFor(d);
        const ids = new Rng(d.seed + 1).randint([d.B, d.S, d.K], 0, d.E);
        const [w, idx] = getTopk(cfg, logits, undefined, { topKIndices: ids });
        assertExact(idx, ids);
        const lrows = rowsOf(logits, d.E);
        // weights: the raw gate values at the drawn ids (random routing returns before any softmax)
        assertExact(
          w,
          rowsOf(ids, d.K).flatMap((row, r) => row.map((e) => lrows[r]![e]!)),
        );
      }),
      { seed: 42, numRuns: 40 },
    );
  });
});
