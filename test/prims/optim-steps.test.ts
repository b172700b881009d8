// AdamwStep and SgdStep on every backend against the spec transcribed here (float32 operations in the order
// prims/optim-steps.ts states), bit for bit over several steps, on sizes spanning several of the native kernels'
// chunks (so several threads).
import { afterAll, describe, expect, it } from "vitest";
import { nativeBinding } from "../../src/backends/native/binding.js";
import { useBackend } from "../../src/backends/select.js";
import { Tensor } from "../../src/core/tensor.js";
import { AdamW, SGD } from "../../src/optim/optimizers.js";
import { testBackends } from "../harness/backends.js";
import { Rng } from "../harness/random.js";

const f = Math.fround;
const t = (a: Float32Array): Tensor => new Tensor(a, [a.length], "float32");
const rand = (n: number, seed: number, scale = 1): Float32Array => new Rng(seed).normal([n], "float32", scale).data as Float32Array;

function adamwSpec(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, s: number[]): void {
  const [lr, b1, omb1, b2, omb2, bc1, bc2, eps, wd] = s.map(f) as [number, number, number, number, number, number, number, number, number];
  for (let i = 0; i < p.length; i++) {
    const gi = g[i]!;
    m[i] = f(f(b1 * m[i]!) + f(omb1 * gi));
    v[i] = f(f(b2 * v[i]!) + f(omb2 * f(gi * gi)));
    const u = f(f(f(m[i]! / bc1) / f(f(Math.sqrt(f(v[i]! / bc2))) + eps)) + f(wd * p[i]!));
    p[i] = f(p[i]! - f(lr * u));
  }
}

function sgdSpec(p: Float32Array, g: Float32Array, trace: Float32Array | null, lr: number, mu: number): void {
  for (let i = 0; i < p.length; i++) {
    let d = g[i]!;
    if (trace !== null) {
      d = f(f(f(mu) * trace[i]!) + d);
      trace[i] = d;
    }
    p[i] = f(p[i]! - f(f(lr) * d));
  }
}

const differing = (a: Float32Array, b: Float32Array): number => a.reduce((n, x, i) => n + (Object.is(x, b[i]) ? 0 : 1), 0);

// Three AdamW steps on the active backend against the spec: the number of parameters whose bits differ.
function adamwDiffering(): number {
  const n = 3 * 65536 + 777;
  const p0 = rand(n, 1);
  const param = t(Float32Array.from(p0));
  const opt = new AdamW([param], { learningRate: 1e-2, weightDecay: 0.05 });
  const [p, m, v] = [Float32Array.from(p0), new Float32Array(n), new Float32Array(n)];
  for (let step = 1; step <= 3; step++) {
    const g = rand(n, 10 + step, step === 2 ? 1e-20 : 1); // step 2: denormal squares
    opt.step([t(g)]);
    adamwSpec(p, g, m, v, [1e-2, 0.9, 1 - 0.9, 0.999, 1 - 0.999, 1 - 0.9 ** step, 1 - 0.999 ** step, 1e-8, 0.05]);
  }
  return differing(param.data as Float32Array, p);
}

describe.each(testBackends())("optimizer steps on %s", (backend) => {
  afterAll(() => void useBackend("ref"));

  it("AdamwStep equals the spec bit for bit (tiny gradients included)", () => {
    useBackend(backend);
    expect(adamwDiffering()).toBe(0);
  });

  it("SgdStep equals the spec bit for bit, with and without momentum", () => {
    useBackend(backend);
    for (const momentum of [0, 0.9]) {
      const n = 2 * 65536 + 5;
      const p0 = rand(n, 7);
      const param = t(Float32Array.from(p0));
      const opt = new SGD([param], { learningRate: 0.03, momentum });
      const p = Float32Array.from(p0);
      const trace = momentum > 0 ? new Float32Array(n) : null;
      for (let step = 0; step < 3; step++) {
        const g = rand(n, 20 + step);
        opt.step([t(g)]);
        sgdSpec(p, g, trace, 0.03, momentum);
      }
      expect(differing(param.data as Float32Array, p), `momentum ${momentum}`).toBe(0);
    }
  });
});

// The native AdamW has a loop per ISA unit (the portable one, AVX-512's lanes): each against the spec.
describe.runIf(nativeBinding() !== undefined)("AdamwStep on every native ISA unit", () => {
  afterAll(() => void useBackend("ref"));

  it("equals the spec bit for bit on each", () => {
    const b = nativeBinding()!;
    const active = b.isa();
    const order = ["scalar", "avx2", "avx512"] as const; // each unit runs where the next one does
    const units = order.slice(0, order.indexOf(active) + 1);
    useBackend("native");
    try {
      for (const isa of units) {
        b.setIsa(isa);
        expect([isa, adamwDiffering()]).toEqual([isa, 0]);
      }
    } finally {
      b.setIsa(active);
    }
  });
});
