// Serve mode: experts held quantized (int8 codes, int4 packed codes, float32 scales per (expert, column)) and run
// from that storage through Prim.QuantizedGmm equal the layer quantized at run time by `intmp` (weight-only) and
// `int8` (weights and activations), on the sparse and dense paths.
import { describe, expect, it } from "vitest";
import { moeConfig } from "../../src/moe/config.js";
import { routedMoeForward, routedMoeForwardParallel, shardWeights } from "../../src/moe/routed-moe.js";
import { quantizeWeights, servedExpertBytes } from "../../src/moe/quantize-weights.js";
import { tiledCodes } from "../../src/prims/quantized-gmm.js";
import { runSpmd } from "../../src/parallel/local-group.js";
import { sparseExpertCombine, sparseExpertCombineComposed } from "../../src/moe/experts.js";
import { route } from "../../src/moe/permute.js";
import { einsum } from "../../src/ops/matmul.js";
import { cast } from "../../src/ops/elementwise.js";
import { startTrace, stopTrace } from "../../src/backends/trace.js";
import { randomInput, randomWeights, scaledError, type Dims } from "./setup.js";

const d: Dims = { B: 2, S: 5, D: 9, H: 7 };
const BASE = {
  num_experts: 4,
  num_experts_per_tok: 2,
  emb_dim: d.D,
  moe_mlp_dim: d.H,
  decoder_block: "mixtral",
  dtype: "float32",
  weight_dtype: "float32",
};
const intmp = (bits: number): Record<string, unknown> => ({ quantization: "intmp", quant_cfg: { __default__: { w_bits: bits } } });
const PATHS: Record<string, Record<string, unknown>> = {
  "sparse megablox": { sparse_matmul: true, megablox: true },
  "sparse ragged_dot": { sparse_matmul: true, megablox: false },
  "dense dropless": { sparse_matmul: false },
  "dense capacity (inference)": { sparse_matmul: false, capacity_factor: 1.5, model_call_mode: "inference" },
};

const bitsEqual = (a: Float32Array | ArrayLike<number>, b: ArrayLike<number>): boolean =>
  a.length === b.length && Array.from(a).every((v, i) => Object.is(v, b[i]));

describe("serve mode: quantized storage", () => {
  it.each([
    ["int8", 8],
    ["int4", 4],
  ] as const)("%s storage runs bit-equal to intmp weight-only on every path; activations stay float", (mode, bits) => {
    for (const [name, keys] of Object.entries(PATHS)) {
      const cfg = moeConfig({ ...BASE, ...keys, ...intmp(bits) });
      const w = randomWeights(cfg, d);
      const x = randomInput(cfg, d);
      const served = quantizeWeights(w, mode);
      const got = routedMoeForward(cfg, served, x).output;
      const want = routedMoeForward(cfg, w, x).output;
      expect(bitsEqual(got.data, want.data), name).toBe(true);
      const float = routedMoeForward(moeConfig({ ...BASE, ...keys }), w, x).output;
      expect(scaledError(got, float), name).toBeGreaterThan(1e-7);
    }
  });

  it("a mode other than int8 or int4 is refused by name, not stored as an unknown format", () => {
    const w = randomWeights(moeConfig({ ...BASE, ...intmp(8) }), d);
    for (const mode of ["int3", "INT8", "", undefined, "fp8_e4m3"])
      expect(() => quantizeWeights(w, mode as never)).toThrow(/\[quantizeWeights\] quantization mode must be one of int8, int4, got/);
  });

  it.each(["float32", "bfloat16"] as const)(
    "the served gate is a read-only copy, quantized (a %s layer: cast too) on its first call only",
    (dtype) => {
      const cfg = moeConfig({ ...BASE, ...PATHS["sparse megablox"], ...intmp(8), dtype });
      const w = randomWeights(cfg, d);
      const x = randomInput(cfg, d);
      const served = quantizeWeights(w, "int8");
      expect(served.gateKernel).not.toBe(w.gateKernel);
      const first = routedMoeForward(cfg, served, x).output;
      startTrace();
      const second = routedMoeForward(cfg, served, x).output;
      // a bfloat16 layer's gate is cast once too: a cast made anew would miss the served quantization
      expect(stopTrace().map((e) => e.prim)).not.toContain("quantize");
      expect(bitsEqual(second.data, first.data)).toBe(true);
      (w.gateKernel.data as Float32Array).fill(0); // the float weights' gate, written after serving: not the served one's
      expect(bitsEqual(routedMoeForward(cfg, served, x).output.data, first.data)).toBe(true);
    },
  );

  it("int8 config: the served layer quantizes activations per row at run time, as the int8 dense einsums do", () => {
    const keys = { ...BASE, quantization: "int8", sparse_matmul: false };
    const cfg = moeConfig(keys);
    const w = randomWeights(cfg, d);
    const x = randomInput(cfg, d);
    const served = quantizeWeights(w, "int8");
    const got = routedMoeForward(cfg, served, x).output;
    expect(bitsEqual(got.data, routedMoeForward(cfg, w, x).output.data)).toBe(true);
    // weight-only would differ: activations really are quantized
    const weightOnly = routedMoeForward(moeConfig({ ...BASE, ...intmp(8), sparse_matmul: false }), served, x).output;
    expect(scaledError(got, weightOnly)).toBeGreaterThan(1e-6);
    // the sparse path with per-(expert, column) weight scales and per-row activations computes the same layer
    const sparse = routedMoeForward(moeConfig({ ...keys, sparse_matmul: true }), served, x).output;
    expect(scaledError(sparse, got)).toBeLessThan(1e-6);
  });

  it.each(["float32", "bfloat16"] as const)(
    "a %s layer: the fused served ExpertFfn gives the serve-mode composition's bits (weight-only and int8 rows, biases, GPT-OSS GLU)",
    (dtype) => {
      for (const [mode, keys] of [
        ["int8", { quantization: "int8" }],
        ["int4", intmp(4)],
      ] as const)
        for (const block of [{ decoder_block: "mixtral" }, { decoder_block: "gpt_oss", mlp_bias: true, mlp_activations_limit: 7 }]) {
          const cfg = moeConfig({ ...BASE, ...block, ...keys, dtype, sparse_matmul: true, megablox: true });
          const w = randomWeights(cfg, d);
          const served = quantizeWeights(w, mode);
          const x = randomInput(cfg, d);
          const gate = einsum("BSD,DE->BSE", x, cast(w.gateKernel, dtype));
          const r = route(cfg, x, gate, undefined, {});
          startTrace();
          const fused = sparseExpertCombine(cfg, r, served, d.B, d.S);
          expect(stopTrace().map((e) => e.prim)).toContain("expert_ffn");
          const composed = sparseExpertCombineComposed(cfg, r, served, d.B, d.S);
          expect(fused.dtype).toBe(dtype);
          expect(bitsEqual(fused.data, composed.data), `${mode} ${block.decoder_block}`).toBe(true);
        }
    },
  );

  it("holds about 1 (int8) and 0.5 (int4) bytes per expert weight", () => {
    const dd: Dims = { B: 1, S: 1, D: 64, H: 96 };
    const cfg = moeConfig({ ...BASE, emb_dim: dd.D, moe_mlp_dim: dd.H, num_experts: 8 });
    const w = randomWeights(cfg, dd);
    const i8 = servedExpertBytes(quantizeWeights(w, "int8"));
    const i4 = servedExpertBytes(quantizeWeights(w, "int4"));
    // codes plus one float32 scale per (expert, column): 1 + 4/k and 0.5 + 4/k bytes
    expect(i8.perWeight).toBeCloseTo(1 + (4 * 2) / (3 * 64) + 4 / (3 * 96), 10);
    expect(i4.perWeight).toBeCloseTo(0.5 + (4 * 2) / (3 * 64) + 4 / (3 * 96), 10);
    const q = quantizeWeights(w, "int4");
    expect(q.wi0.codes.data).toBeInstanceOf(Uint8Array);
    expect(quantizeWeights(q, "int4").wi0).toBe(q.wi0);
    expect(() => quantizeWeights(q, "int8")).toThrow(/held as int4 are not requantized to int8/);
    expect(quantizeWeights(w, "int8").wo.codes.data).toBeInstanceOf(Int8Array);
  });

  it("expert parallelism: each rank runs its slice of the stored experts (EP=2 equals EP=1)", async () => {
    const cfg = moeConfig({ ...BASE, ...intmp(4) });
    const w = randomWeights(cfg, d);
    const x = randomInput(cfg, d);
    const served = quantizeWeights(w, "int4");
    const one = routedMoeForward(cfg, served, x).output;
    const outs = await runSpmd(2, (g) => routedMoeForwardParallel(cfg, g, "batch_replicated", shardWeights(served, g.rank, 2), x));
    expect(scaledError(outs[0]!.output, one)).toBeLessThan(1e-6);
  });

  it("expert parallelism over codes in tiles (D, H multiples of 128): each rank's slice of tiles, EP=2 equals EP=1", async () => {
    const dt: Dims = { B: 1, S: 6, D: 128, H: 256 };
    for (const mode of ["int8", "int4"] as const) {
      const cfg = moeConfig({ ...BASE, ...intmp(mode === "int8" ? 8 : 4), emb_dim: dt.D, moe_mlp_dim: dt.H });
      const served = quantizeWeights(randomWeights(cfg, dt), mode);
      expect([served.wi0, served.wi1, served.wo].map((w) => tiledCodes(w.codes))).toEqual([true, true, true]);
      const x = randomInput(cfg, dt);
      const one = routedMoeForward(cfg, served, x).output;
      const outs = await runSpmd(2, (g) => routedMoeForwardParallel(cfg, g, "batch_replicated", shardWeights(served, g.rank, 2), x));
      expect(scaledError(outs[0]!.output, one), mode).toBeLessThan(1e-6);
    }
  });
});
