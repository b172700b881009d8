import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Tensor } from "../../src/core/tensor.js";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { mul } from "../../src/ops/elementwise.js";
import { concatenate } from "../../src/ops/movement.js";
import { sum } from "../../src/ops/reduce.js";
import { moeConfig } from "../../src/moe/config.js";
import { routedMoeForward } from "../../src/moe/routed-moe.js";
import { runWorkers } from "../../src/parallel/worker-group.js";
import { nativeInfo } from "../../src/backends/native/index.js";
import { foldIn, normal, prngKey } from "../../src/nn/random.js";

const root = join(import.meta.dirname, "../..");
const built = existsSync(join(root, "dist/src/parallel/worker-entry.js"));

describe.skipIf(!built)("worker-thread group (real parallel ranks; needs the built package)", () => {
  it("EP=2 on two threads equals one device: output and gradients", async () => {
    const keys = { decoder_block: "mixtral", num_experts: 4, num_experts_per_tok: 2, emb_dim: 8, moe_mlp_dim: 6, dtype: "float32" };
    const cfg = moeConfig(keys);
    const k = prngKey(7);
    const n = (i: number, shape: number[], s: number): Tensor => mul(normal(foldIn(k, i), shape), s);
    const weights = { gateKernel: n(0, [8, 4], 1), wi0: n(1, [4, 8, 6], 0.4), wi1: n(2, [4, 8, 6], 0.4), wo: n(3, [4, 6, 8], 0.4) };
    const x = n(4, [4, 3, 8], 1);
    const ct = n(5, [4, 3, 8], 1);
    process.env.MOEKIT_BACKEND = "ref"; // same backend as this thread, so outputs can be compared bit for bit
    const ranks = await runWorkers<{ output: Tensor; gradX: Tensor; gradWi0: Tensor }>(
      2,
      join(import.meta.dirname, "fixtures/ep-rank.mjs"),
      { keys, weights, x, ct },
    );
    const f = (xx: Tensor, wi0: Tensor): Tensor => sum(mul(routedMoeForward(cfg, { ...weights, wi0 }, xx).output, ct));
    const one = valueAndGrad(f)(x, weights.wi0);
    const out = concatenate(ranks.map((r) => r.output));
    const ref = routedMoeForward(cfg, weights, x).output;
    expect(Array.from(out.data)).toEqual(Array.from(ref.data));
    const gx = concatenate(ranks.map((r) => r.gradX));
    const gw = concatenate(ranks.map((r) => r.gradWi0));
    gx.data.forEach((v, i) => expect(v).toBeCloseTo(one.grads[0].data[i]!, 5));
    gw.data.forEach((v, i) => expect(v).toBeCloseTo(one.grads[1].data[i]!, 5));
  });

  it("each rank's native pool gets an equal share of the CPUs unless MOEKIT_THREADS names a count", async () => {
    const info = nativeInfo();
    const threads = await runWorkers<number>(2, join(import.meta.dirname, "fixtures/threads-rank.mjs"));
    const env = process.env.MOEKIT_THREADS;
    const cpus = availableParallelism();
    const want = !info.available ? 0 : env !== undefined && env !== "" ? Number(env) || cpus : Math.max(1, Math.floor(cpus / 2));
    expect(threads).toEqual([want, want]);
  });

  it("a failing rank fails the run with its message", async () => {
    await expect(runWorkers(2, join(import.meta.dirname, "fixtures/ep-rank.mjs"), { keys: { num_experts: 0 } })).rejects.toThrow(
      /num_experts/,
    );
  });
});
