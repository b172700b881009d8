// AdamW and SGD: the update rules against a float64 transcription of optax's formulas; a small least-squares fit
// that must converge; argument errors. (Each backend's update kernels: test/prims/optim-steps.test.ts.)
import { describe, expect, it } from "vitest";
import { Tensor } from "../../src/core/tensor.js";
import { AdamW, SGD } from "../../src/optim/optimizers.js";
import { Rng } from "../harness/random.js";

const rand = (n: number, seed: number, scale = 1): Float32Array => new Rng(seed).floats(n, scale);

const t = (a: Float32Array, shape = [a.length]): Tensor => new Tensor(a, shape, "float32");

describe("AdamW", () => {
  it("follows optax's adamw on a few values (float64 transcription, float32 rounding)", () => {
    const p = Float32Array.from([0.5, -1.25, 3]);
    const opt = new AdamW([t(p)], { learningRate: 0.1, b1: 0.8, b2: 0.95, eps: 1e-6, weightDecay: 0.01 });
    const gs = [Float32Array.from([0.3, -2, 0]), Float32Array.from([-0.1, 0.5, 4])];
    const ref = [0.5, -1.25, 3];
    const m = [0, 0, 0];
    const v = [0, 0, 0];
    gs.forEach((g, k) => {
      opt.step([t(g)]);
      const step = k + 1;
      for (let i = 0; i < 3; i++) {
        m[i] = 0.8 * m[i]! + 0.2 * g[i]!;
        v[i] = 0.95 * v[i]! + 0.05 * g[i]! * g[i]!;
        const u = m[i]! / (1 - 0.8 ** step) / (Math.sqrt(v[i]! / (1 - 0.95 ** step)) + 1e-6) + 0.01 * ref[i]!;
        ref[i] = ref[i]! - 0.1 * u;
      }
    });
    for (let i = 0; i < 3; i++) expect(Math.abs(p[i]! - ref[i]!)).toBeLessThan(1e-6 * Math.max(1, Math.abs(ref[i]!)));
  });

  it("fits a least-squares problem", () => {
    // minimise |A w - y|² over w in R^8: gradient 2 A^T (A w - y)
    const rows = 32;
    const A = rand(rows * 8, 3);
    const wTrue = rand(8, 4);
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) for (let j = 0; j < 8; j++) y[r] = y[r]! + A[r * 8 + j]! * wTrue[j]!;
    const w = new Float32Array(8);
    const opt = new AdamW([t(w)], { learningRate: 0.05, weightDecay: 0 });
    const loss = (): number => {
      let s = 0;
      for (let r = 0; r < rows; r++) {
        let e = -y[r]!;
        for (let j = 0; j < 8; j++) e += A[r * 8 + j]! * w[j]!;
        s += e * e;
      }
      return s;
    };
    const first = loss();
    for (let it = 0; it < 400; it++) {
      const g = new Float32Array(8);
      for (let r = 0; r < rows; r++) {
        let e = -y[r]!;
        for (let j = 0; j < 8; j++) e += A[r * 8 + j]! * w[j]!;
        for (let j = 0; j < 8; j++) g[j] = g[j]! + 2 * e * A[r * 8 + j]!;
      }
      opt.step([t(g)]);
    }
    expect(loss()).toBeLessThan(1e-3 * first);
  });

  it("refuses what it cannot update, naming it", () => {
    const a = t(new Float32Array(4), [2, 2]);
    expect(() => new AdamW([new Tensor(new Float32Array(4), [4], "bfloat16")], { learningRate: 1 })).toThrow(/parameter 0 is bfloat16/);
    expect(() => new AdamW([a, a], { learningRate: 1 })).toThrow(/parameter 1 shares storage with parameter 0/);
    const buf = new Float32Array(8);
    expect(() => new AdamW([t(buf.subarray(0, 4)), t(buf.subarray(4))], { learningRate: 1 })).not.toThrow();
    expect(() => new AdamW([a], { learningRate: 0 })).toThrow(/learningRate must be a finite number > 0/);
    expect(() => new AdamW([a], { learningRate: 1, b2: 1 })).toThrow(/b2 must be in \[0, 1\)/);
    const opt = new AdamW([a], { learningRate: 1 });
    expect(() => opt.step([])).toThrow(/got 0 gradients for 1 parameters/);
    expect(() => opt.step([t(new Float32Array(4))])).toThrow(/gradient 0 has shape \[4\], parameter 0 has \[2, 2\]/);
    opt.step([undefined]);
    expect(Array.from(a.data)).toEqual([0, 0, 0, 0]);
  });
});

describe("SGD", () => {
  it("takes plain and momentum steps as optax.sgd", () => {
    const p = Float32Array.from([1, -2]);
    new SGD([t(p)], { learningRate: 0.5 }).step([t(Float32Array.from([2, 4]))]);
    expect(Array.from(p)).toEqual([0, -4]);
    const q = Float32Array.from([1]);
    const opt = new SGD([t(q)], { learningRate: 0.5, momentum: 0.5 });
    opt.step([t(Float32Array.from([1]))]); // trace 1, q = 0.5
    opt.step([t(Float32Array.from([1]))]); // trace 1.5, q = -0.25
    expect(q[0]).toBe(-0.25);
  });
});
