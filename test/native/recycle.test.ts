// recycle(): storage handed back is reused by the native kernels' large outputs, and what comes out of recycled
// (even NaN-filled) storage is bit-identical to what fresh storage gives.
import { afterEach, describe, expect, it } from "vitest";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { nativeBackend as nativeBackendOf } from "../../src/backends/native/index.js";
const nativeBackend = nativeBackendOf();
import { recycle, recycledBytes, releaseRecycled, StoragePool, storagePool } from "../../src/core/pool.js";
import { Tensor } from "../../src/core/tensor.js";
import { moeConfig } from "../../src/moe/config.js";
import { routedMoeForward, type RoutedMoeWeights } from "../../src/moe/routed-moe.js";
import { mul } from "../../src/ops/elementwise.js";
import { sum } from "../../src/ops/reduce.js";
import { initFromEnv } from "../../src/backends/select.js";
import { withBackend } from "../harness/backends.js";
import { Rng } from "../harness/random.js";

const rand = (shape: number[], seed: number, scale: number): Tensor => new Rng(seed).tensor(shape, "float32", scale);

// E·D·H floats = 1 MiB: the expert-weight gradients are large enough to be pooled
const E = 8, D = 128, H = 256, T = 96, K = 2;
const cfg = moeConfig({ num_experts: E, num_experts_per_tok: K, emb_dim: D, moe_mlp_dim: H, dtype: "float32" });
const x = rand([1, T, D], 1, 1);
const w: RoutedMoeWeights = { gateKernel: rand([D, E], 2, 0.2), wi0: rand([E, D, H], 3, 0.1), wi1: rand([E, D, H], 4, 0.1), wo: rand([E, H, D], 5, 0.1) };
const ct = rand([1, T, D], 6, 1);
const step = () =>
  valueAndGrad((xx: Tensor, g: Tensor, a: Tensor, b: Tensor, c: Tensor) => sum(mul(routedMoeForward(cfg, { gateKernel: g, wi0: a, wi1: b, wo: c }, xx).output, ct)))(
    x,
    w.gateKernel,
    w.wi0,
    w.wi1,
    w.wo,
  );
const bits = (t: Tensor) => Array.from(new Uint32Array(new Float32Array(t.data).buffer));

afterEach(() => releaseRecycled());

describe.skipIf(nativeBackend === undefined)("recycle (native fused FFN)", () => {
  it("gradients computed into recycled NaN-filled storage are bit-identical to fresh ones, and use that storage", async () => {
    await withBackend("native", () => {
      releaseRecycled();
      const fresh = step();
      const poison = [0, 1, 2].map(() => new Tensor(new Float32Array(E * D * H).fill(NaN), [E, D, H], "float32"));
      releaseRecycled();  // the residuals of `fresh` went back to the pool: start from the NaN buffers only
      const reused = new Set(poison.map((t) => t.data));
      recycle(poison);
      expect(recycledBytes()).toBe(3 * E * D * H * 4);
      const again = step();
      expect(bits(again.value)).toEqual(bits(fresh.value));
      again.grads.forEach((g, i) => expect(bits(g), `grad ${i}`).toEqual(bits(fresh.grads[i]!)));
      expect(again.grads.slice(2).every((g) => reused.has(g.data))).toBe(true);
    });
  });

  it("a training loop that recycles its gradients reaches a steady pool size", async () => {
    await withBackend("native", () => {
      releaseRecycled();
      const sizes: number[] = [];
      for (let i = 0; i < 4; i++) {
        recycle(step().grads);
        sizes.push(recycledBytes());
      }
      expect(sizes[3]).toBe(sizes[1]);
      expect(sizes[3]).toBeGreaterThanOrEqual(3 * E * D * H * 4);
    });
  });
});

describe("StoragePool", () => {
  it("keeps whole float32 buffers of >= 1 MiB within its byte budget, once each", () => {
    const pool = new StoragePool(3 * 2 ** 20);
    const big = new Float32Array(2 ** 18);  // 1 MiB
    pool.give(big);
    pool.give(big);
    expect(pool.bytes).toBe(2 ** 20);
    pool.give(new Float32Array(1000));  // small
    pool.give(new Float32Array(2 ** 19).subarray(0, 2 ** 18));  // a view
    expect(pool.bytes).toBe(2 ** 20);
    pool.give(new Float32Array(2 ** 18));
    pool.give(new Float32Array(2 ** 18));
    pool.give(new Float32Array(2 ** 18));  // over budget
    expect(pool.bytes).toBe(3 * 2 ** 20);
    expect(pool.take(2 ** 18)).toBeInstanceOf(Float32Array);
    expect(pool.bytes).toBe(2 * 2 ** 20);
    expect(pool.take(12).length).toBe(12);  // none of that size: fresh
  });

  it("recycle ignores float64 storage and int32 views into a larger buffer", () => {
    releaseRecycled();
    const part = new Int32Array(2 ** 20).subarray(0, 2 ** 19);
    recycle(new Tensor(new Float64Array(2 ** 18), [2 ** 18], "float64"), undefined, [new Tensor(part, [2 ** 19], "int32")]);
    expect(recycledBytes()).toBe(0);
  });

  it("recycle keeps a whole int32 buffer (quantized values) as float32 storage for the next take", () => {
    releaseRecycled();
    const values = new Int32Array(2 ** 19);
    recycle(new Tensor(values, [2 ** 19], "int32"));
    expect(recycledBytes()).toBe(2 ** 21);
    const again = storagePool.take(2 ** 19);
    expect(again).toBeInstanceOf(Float32Array);
    expect(again.buffer).toBe(values.buffer);
    expect(recycledBytes()).toBe(0);
  });
});

describe("initFromEnv", () => {
  // back to the default budget (2048 MiB) and the ref backend the suites expect
  afterEach(() => initFromEnv({ MOEKIT_BACKEND: "ref", MOEKIT_POOL_MB: "2048" }));

  it("MOEKIT_POOL_MB sets the recycle budget; 0 turns recycling off", () => {
    initFromEnv({ MOEKIT_BACKEND: "ref", MOEKIT_POOL_MB: "1.5" });
    recycle(new Tensor(new Float32Array(2 ** 18), [2 ** 18], "float32"), new Tensor(new Float32Array(2 ** 18), [2 ** 18], "float32"));
    expect(recycledBytes()).toBe(2 ** 20);
    initFromEnv({ MOEKIT_BACKEND: "ref", MOEKIT_POOL_MB: "0" });
    expect(recycledBytes()).toBe(0);
    recycle(new Tensor(new Float32Array(2 ** 18), [2 ** 18], "float32"));
    expect(recycledBytes()).toBe(0);
  });

  it("a bad value is an error naming the variable", () => {
    for (const v of ["abc", "-1", "", "Infinity"]) expect(() => initFromEnv({ MOEKIT_BACKEND: "ref", MOEKIT_POOL_MB: v })).toThrow(/MOEKIT_POOL_MB/);
    expect(() => initFromEnv({ MOEKIT_BACKEND: "gpu" })).toThrow(/MOEKIT_BACKEND=gpu must be auto, native or ref/);
    expect(() => initFromEnv({ MOEKIT_BACKEND: "ref", MOEKIT_THREADS: "1.5" })).toThrow(/MOEKIT_THREADS/);
  });
});
