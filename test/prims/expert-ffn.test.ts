// The ExpertFfn primitive (and its backward, ExpertFfnBwd) on every backend against its spec, the op composition
// gatherSorted → gmm, GLU, gmm → unpermute (sparseExpertCombineComposed) on the reference backend. Forward and every
// gradient (inputs, combine weights, wi0, wi1, wo, biases) via valueAndGrad. The reference kernel's forward gives the
// composition's bits; its backward accumulates in float64.
//
// Tolerances: fp32 weights (and bf16 weights on the "widen" path, which multiplies the exact bf16 values in fp32):
// max|native - ref| <= 1e-5 · max(1, max|ref|) · sqrt(depth), depth = the longest contraction (D, H or T·K).
// bf16 weights on the dpbf16 / amx paths round the activations to bf16 (relative 2^-9) before multiplying:
// max|native - ref| <= 2^-8 · max(1, max|ref|) · sqrt(depth) (they pass at 2^-10). Gradients of bf16 weights are bf16 (both sides round
// the fp32 gradient, as the reference's cast VJP does), so they may also differ by one bf16 ulp: + 2^-7 · max|ref|.
import v8 from "node:v8";
import vm from "node:vm";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { nativeBinding } from "../../src/backends/native/binding.js";
import {
  nativeInfo,
  nativeWorkspaceBytes,
  setNativeBf16Path,
  setNativeThreads,
  type NativeBf16Path,
} from "../../src/backends/native/index.js";
import { nativeProbes } from "../../src/backends/native/probes.js";
import { useBackend } from "../../src/backends/select.js";
import { Prim } from "../../src/prims/prims.js";
import { gradCoverage } from "../harness/families.js";
import { Rng } from "../harness/random.js";
import { testBackends } from "../harness/backends.js";
import type { DType } from "../../src/core/dtype.js";
import { Tensor } from "../../src/core/tensor.js";
import { mul } from "../../src/ops/elementwise.js";
import { sum } from "../../src/ops/reduce.js";
import { sgdStep } from "../../src/ops/optim-steps.js";
import { recycle, storagePool } from "../../src/core/pool.js";
import { moeConfig, type MoeConfig } from "../../src/moe/config.js";
import { sparseExpertCombine, sparseExpertCombineComposed, type ExpertWeights } from "../../src/moe/experts.js";
import { route, type Routed } from "../../src/moe/permute.js";

const info = nativeInfo();
const cov = gradCoverage("expert-ffn");

const rand = (shape: number[], seed: number, scale = 1, dtype: DType = "float32"): Tensor => new Rng(seed).tensor(shape, dtype, scale);

interface Case {
  name: string;
  raw: Record<string, unknown>;
  B: number;
  S: number;
  D: number;
  H: number;
  E: number;
  K: number;
}

const CASES: Case[] = [
  { name: "silu", raw: {}, B: 2, S: 5, D: 16, H: 24, E: 4, K: 2 },
  { name: "gelu", raw: { mlp_activations: ["gelu", "linear"] }, B: 1, S: 7, D: 13, H: 19, E: 5, K: 3 },
  {
    name: "gpt_oss + biases",
    raw: { decoder_block: "gpt_oss", mlp_activations: ["sigmoid", "linear"], mlp_activations_limit: 0.7, mlp_bias: true },
    B: 2,
    S: 4,
    D: 12,
    H: 20,
    E: 4,
    K: 2,
  },
  { name: "llama4", raw: { decoder_block: "llama4" }, B: 2, S: 6, D: 10, H: 14, E: 4, K: 1 },
  { name: "relu + biases", raw: { mlp_activations: ["relu", "linear"], mlp_bias: true }, B: 1, S: 9, D: 11, H: 17, E: 3, K: 2 },
  { name: "linear", raw: { mlp_activations: ["linear", "linear"] }, B: 3, S: 2, D: 9, H: 8, E: 6, K: 6 },
];

function config(c: Case, dtype = "float32"): MoeConfig {
  return moeConfig({
    num_experts: c.E,
    num_experts_per_tok: c.K,
    emb_dim: c.D,
    moe_mlp_dim: c.H,
    dtype,
    ...c.raw,
  });
}

interface Problem {
  cfg: MoeConfig;
  r: Routed;
  w: ExpertWeights;
  args: Tensor[];
  seedCt: Tensor;
}

function problem(c: Case, seed: number, weightDtype: DType = "float32"): Problem {
  const cfg = config(c);
  const inputs = rand([c.B, c.S, c.D], seed);
  const logits = rand([c.B, c.S, c.E], seed + 1, 2);
  const r = route(cfg, inputs, logits, undefined);
  const ws = 1 / Math.sqrt(c.D);
  const w: ExpertWeights = {
    wi0: rand([c.E, c.D, c.H], seed + 2, 2 * ws, weightDtype),
    wi1: rand([c.E, c.D, c.H], seed + 3, 2 * ws, weightDtype),
    wo: rand([c.E, c.H, c.D], seed + 4, 2 / Math.sqrt(c.H), weightDtype),
  };
  if (cfg.mlpBias) {
    w.wi0Bias = rand([c.E, c.H], seed + 5, 0.3, weightDtype);
    w.wi1Bias = rand([c.E, c.H], seed + 6, 0.3, weightDtype);
    w.woBias = rand([c.E, c.D], seed + 7, 0.3, weightDtype);
  }
  const args = [r.inputs_TD, r.weights_BSK, w.wi0, w.wi1, w.wo];
  if (cfg.mlpBias) args.push(w.wi0Bias!, w.wi1Bias!, w.woBias!);
  return { cfg, r, w, args, seedCt: rand([c.B, c.S, c.D], seed + 8) };
}

/** A bfloat16 layer (MaxText's default dtype) on bfloat16 tokens, weights stored in `weightDtype`. */
function bf16Problem(c: Case, seed: number, weightDtype: DType): Problem {
  const p = problem(c, seed, weightDtype);
  const cfg = config(c, "bfloat16");
  const inputs = rand([c.B, c.S, c.D], seed, 1, "bfloat16");
  const r = route(cfg, inputs, rand([c.B, c.S, c.E], seed + 1, 2), undefined);
  return { ...p, cfg, r };
}

/** sum(sparseExpertCombine(...) · G): a scalar whose gradient reaches every input (the spec: the op composition). */
function loss(p: Problem, c: Case, spec = false) {
  const combine = spec ? sparseExpertCombineComposed : sparseExpertCombine;
  return (...a: Tensor[]): Tensor => {
    const r: Routed = { ...p.r, inputs_TD: a[0]!, weights_BSK: a[1]! };
    const w: ExpertWeights = { wi0: a[2]!, wi1: a[3]!, wo: a[4]!, wi0Bias: a[5], wi1Bias: a[6], woBias: a[7] };
    return sum(mul(combine(p.cfg, r, w, c.B, c.S), p.seedCt));
  };
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

function expectClose(nat: Tensor, ref: Tensor, depth: number, rel: number, what: string): void {
  expect(nat.shape, what).toEqual(ref.shape);
  expect(nat.dtype, what).toBe(ref.dtype);
  let diff = 0;
  for (let i = 0; i < ref.size; i++) {
    const d = Math.abs(nat.data[i]! - ref.data[i]!);
    diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
  }
  // bf16 results (gradients of bf16 weights, cast like the reference's cast VJP) may differ by one bf16 ulp
  const ulp = ref.dtype === "bfloat16" ? 2 ** -7 * maxAbs(ref.data) : 0;
  const tol = rel * Math.max(1, maxAbs(ref.data)) * Math.sqrt(Math.max(1, depth)) + ulp;
  expect(diff, `${what}: max|diff| ${diff} > ${tol}`).toBeLessThanOrEqual(tol);
}

/**
 * A bfloat16 layer on the native kernels against the reference: their matmuls accumulate in fp32 (the reference in
 * float64), so an intermediate lands one bf16 ulp apart now and then and moves the outputs that depend on it. Most
 * outputs keep the reference's bits (about 99.7% at the sizes measured); the rest are within one bf16 ulp of the
 * largest output.
 */
function expectBf16Agreement(got: Tensor, want: Tensor, what: string): void {
  expect(got.dtype, what).toBe("bfloat16");
  let differ = 0;
  let diff = 0;
  for (let i = 0; i < want.size; i++) {
    if (got.data[i] === want.data[i]) continue;
    differ++;
    const d = Math.abs(got.data[i]! - want.data[i]!);
    diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
  }
  expect(differ, `${what}: ${differ} of ${want.size} outputs differ`).toBeLessThanOrEqual(Math.max(2, want.size / 100));
  expect(diff, `${what}: max|diff|`).toBeLessThanOrEqual(2 ** -7 * maxAbs(want.data));
}

const GRAD_NAMES = ["inputs_TD", "weights_BSK", "wi0", "wi1", "wo", "wi0Bias", "wi1Bias", "woBias"];

/** Value and all gradients of the composition on ref, then of the primitive on `backend`; compared. */
function compare(c: Case, p: Problem, rel: number, tag: string, backend: string): void {
  useBackend("ref");
  const ref = valueAndGrad(loss(p, c, true))(...p.args);
  const refOut = sparseExpertCombineComposed(p.cfg, p.r, p.w, c.B, c.S);
  useBackend(backend as "ref" | "native");
  const nat = valueAndGrad(loss(p, c))(...p.args);
  const natOut = sparseExpertCombine(p.cfg, p.r, p.w, c.B, c.S);
  cov.mark(Prim.ExpertFfn);
  const depth = Math.max(c.D, c.H, c.B * c.S * c.K);
  expectClose(natOut, refOut, depth, rel, `${tag} forward`);
  expectClose(nat.value, ref.value, depth * c.D, rel, `${tag} loss`);
  nat.grads.forEach((g, i) => expectClose(g, ref.grads[i]!, depth, rel, `${tag} d${GRAD_NAMES[i]}`));
}

describe.each(testBackends())("ExpertFfn on %s against the op composition on ref", (backend) => {
  afterAll(() => void useBackend("ref"));

  for (const c of CASES) {
    it(`${c.name}: forward and all gradients match (fp32 weights)`, () => {
      compare(c, problem(c, 10), 1e-5, c.name, backend);
    });
  }

  it("gradients for the tracked inputs only (frozen experts) match", () => {
    const c = CASES[2]!;
    const p = problem(c, 15);
    const f =
      (spec: boolean) =>
      (x: Tensor, wts: Tensor, wi1: Tensor): Tensor =>
        loss(p, c, spec)(x, wts, p.w.wi0, wi1, p.w.wo, ...p.args.slice(5));
    useBackend("ref");
    const ref = valueAndGrad(f(true))(p.r.inputs_TD, p.r.weights_BSK, p.w.wi1);
    useBackend(backend);
    const nat = valueAndGrad(f(false))(p.r.inputs_TD, p.r.weights_BSK, p.w.wi1);
    const depth = Math.max(c.D, c.H, c.B * c.S * c.K);
    ["inputs_TD", "weights_BSK", "wi1"].forEach((name, i) => expectClose(nat.grads[i]!, ref.grads[i]!, depth, 1e-5, `frozen d${name}`));
  });

  it("bf16 weights (widen on native): forward and all gradients match", () => {
    if (backend === "native") setNativeBf16Path("widen");
    try {
      for (const c of [CASES[0]!, CASES[2]!, CASES[3]!]) compare(c, problem(c, 30, "bfloat16"), 1e-5, `bf16 ${c.name}`, backend);
    } finally {
      if (backend === "native" && info.bf16Path !== undefined) setNativeBf16Path(info.bf16Path);
    }
  });

  it("the reference kernel's forward gives the composition's bits", () => {
    if (backend !== "ref") return;
    for (const c of CASES) {
      const p = problem(c, 70);
      useBackend("ref");
      const want = sparseExpertCombineComposed(p.cfg, p.r, p.w, c.B, c.S);
      const got = sparseExpertCombine(p.cfg, p.r, p.w, c.B, c.S);
      expect(Array.from(got.data), c.name).toEqual(Array.from(want.data));
    }
  });

  it("bfloat16 layers: the reference kernel gives the composition's bits, the native kernels agree to bf16 precision", () => {
    for (const c of CASES) {
      for (const wdt of ["float32", "bfloat16"] as const) {
        const p = bf16Problem(c, 90, wdt);
        useBackend("ref");
        const want = sparseExpertCombineComposed(p.cfg, p.r, p.w, c.B, c.S);
        expect(want.dtype).toBe("bfloat16");
        useBackend(backend);
        const got = sparseExpertCombine(p.cfg, p.r, p.w, c.B, c.S);
        cov.mark(Prim.ExpertFfn);
        const tag = `bf16 layer ${c.name}, ${wdt} weights`;
        if (backend === "ref") expect(Array.from(got.data), tag).toEqual(Array.from(want.data));
        else expectBf16Agreement(got, want, tag);
      }
    }
  });

  it("layers it does not cover take the composition", () => {
    const c = CASES[0]!;
    const p = problem(c, 1);
    useBackend(backend);
    const tanhAct = moeConfig({
      num_experts: c.E,
      num_experts_per_tok: c.K,
      emb_dim: c.D,
      moe_mlp_dim: c.H,
      dtype: "float32",
      mlp_activations: ["tanh", "linear"],
    });
    const f64 = { ...p.w, wo: new Tensor(Float64Array.from(p.w.wo.data), p.w.wo.shape, "float64") };
    expect(sparseExpertCombine(tanhAct, p.r, p.w, c.B, c.S).shape).toEqual([c.B, c.S, c.D]);
    expect(sparseExpertCombine(p.cfg, p.r, f64, c.B, c.S).shape).toEqual([c.B, c.S, c.D]);
  });
});

describe("expert-ffn gradient coverage", () => {
  it("every differentiable primitive of the family was gradient-checked", () => cov.verify());
});

describe.skipIf(!info.available)(`ExpertFfn on the native kernels${info.available ? "" : ` (skipped: ${info.reason})`}`, () => {
  const b = nativeBinding()!;
  const defaultPath = info.bf16Path;
  afterEach(() => void useBackend("ref"));
  afterAll(() => {
    if (info.isa !== undefined) b.setIsa(info.isa);
    if (defaultPath !== undefined) setNativeBf16Path(defaultPath);
    setNativeThreads(0);
  });

  it("a bfloat16 layer reads its weights anew after an in-place update or a recycle (no stale bf16 bits)", () => {
    // wo of 1 MiB: the storage pool keeps buffers from that size on
    const c: Case = { name: "silu 1 MiB", raw: {}, B: 1, S: 4, D: 256, H: 256, E: 4, K: 2 };
    const forward = (p: Problem, w: ExpertWeights): [Tensor, Tensor] => {
      useBackend("ref");
      const want = sparseExpertCombineComposed(p.cfg, p.r, w, c.B, c.S);
      useBackend("native");
      return [sparseExpertCombine(p.cfg, p.r, w, c.B, c.S), want];
    };
    const p = bf16Problem(c, 40, "float32");
    const [y1] = forward(p, p.w);
    sgdStep(p.w.wi0, rand(p.w.wi0.shape as number[], 41, 0.5), undefined, { lr: 1, momentum: 0 });
    const [y2, want2] = forward(p, p.w);
    expect(Array.from(y2.data)).not.toEqual(Array.from(y1.data));
    expectBf16Agreement(y2, want2, "after sgdStep");
    // bf16 weights go to the kernels as bit patterns cached per storage: a recycled weight's storage comes back
    // from the pool under a new tensor with other values
    const q = bf16Problem(c, 43, "bfloat16");
    forward(q, q.w);
    const old = q.w.wo.data;
    recycle([q.w.wo]);
    const storage = storagePool.take(old.length);
    expect(storage).toBe(old);
    storage.set(rand(q.w.wo.shape as number[], 42, 2 / Math.sqrt(c.H), "bfloat16").data);
    const [y3, want3] = forward(q, { ...q.w, wo: new Tensor(storage, q.w.wo.shape, "bfloat16") });
    expectBf16Agreement(y3, want3, "after recycle");
  });

  it("the portable kernels (isa scalar) match too", () => {
    b.setIsa("scalar");
    try {
      compare(CASES[2]!, problem(CASES[2]!, 20), 1e-5, "scalar gpt_oss", "native");
      compare(CASES[0]!, problem(CASES[0]!, 21), 1e-5, "scalar silu", "native");
    } finally {
      b.setIsa(info.isa!);
    }
  });

  it("bfloat16 layers agree on every unit and bf16 path (float32 weights rounded as read, and bf16 weights)", () => {
    const units: [string, NativeBf16Path | undefined][] = [
      ["scalar", undefined],
      ["avx2", undefined],
      [info.isa!, "widen"],
    ];
    for (const path of ["dpbf16", "amx"] as const)
      if (b.cpuHasAvx512Bf16() && (path === "dpbf16" || b.cpuHasAmxBf16())) units.push([info.isa!, path]);
    try {
      for (const [isa, path] of units) {
        if (isa === "avx2" && !["avx2", "avx512"].includes(info.isa!)) continue;
        b.setIsa(isa as "scalar");
        if (path !== undefined) setNativeBf16Path(path);
        // 20 routed rows over 4 or 5 experts: groups on the streaming kernel (and, on AVX2 and the portable path,
        // groups of more than 4 rows on the packed one)
        for (const [c, wdt] of [
          [CASES[0]!, "float32"],
          [CASES[2]!, "float32"],
          [CASES[1]!, "bfloat16"],
        ] as const) {
          const p = bf16Problem(c, 22, wdt);
          useBackend("ref");
          const want = sparseExpertCombineComposed(p.cfg, p.r, p.w, c.B, c.S);
          useBackend("native");
          expectBf16Agreement(
            sparseExpertCombine(p.cfg, p.r, p.w, c.B, c.S),
            want,
            `${isa} ${path ?? ""} bf16 layer ${c.name}, ${wdt} weights`,
          );
        }
        b.setIsa(info.isa!);
      }
    } finally {
      b.setIsa(info.isa!);
      if (defaultPath !== undefined) setNativeBf16Path(defaultPath);
    }
  });

  const paths: NativeBf16Path[] = [];
  if (info.available && b.cpuHasAvx512Bf16()) paths.push("dpbf16");
  if (info.available && b.cpuHasAmxBf16()) paths.push("amx");
  for (const path of paths) {
    it(`bf16 weights (${path}): forward and all gradients match`, () => {
      setNativeBf16Path(path);
      const rel = path === "widen" ? 1e-5 : 2 ** -8;
      for (const c of [CASES[0]!, CASES[2]!, CASES[3]!]) compare(c, problem(c, 30, "bfloat16"), rel, `${path} ${c.name}`, "native");
    });
  }

  it("bf16 bits are converted once per weight storage", () => {
    const t = rand([3, 4, 5], 40, 1, "bfloat16");
    const bits = t.bf16BitsOf((v, out) => b.f32ToBf16Bits(v, out));
    expect(new Tensor(t.data, t.shape, t.dtype).bf16BitsOf()).toBe(bits);
    const back = new Float32Array(new Uint32Array(Array.from(bits, (u) => u << 16)).buffer);
    expect(Array.from(back)).toEqual(Array.from(t.data));
  });

  it("is bit-identical for 1 and 2 threads, forward and backward", () => {
    const c: Case = { name: "pool", raw: { mlp_bias: true }, B: 2, S: 32, D: 64, H: 96, E: 4, K: 4 };
    const p = problem(c, 50);
    useBackend("native");
    const run = (threads: number) => {
      setNativeThreads(threads);
      return valueAndGrad(loss(p, c))(...p.args);
    };
    const one = run(1);
    const two = run(2);
    const bits = (t: Tensor) => new Uint32Array(new Float32Array(t.data).buffer);
    expect(bits(two.value)).toEqual(bits(one.value));
    two.grads.forEach((g, i) => expect(bits(g), GRAD_NAMES[i]).toEqual(bits(one.grads[i]!)));
  });

  it("does not leak: many forward + backward calls keep memory bounded", async () => {
    v8.setFlagsFromString("--expose_gc");
    const gc = vm.runInNewContext("gc") as () => void;
    const c: Case = { name: "leak", raw: { mlp_bias: true }, B: 4, S: 16, D: 48, H: 64, E: 8, K: 4 };
    const p = problem(c, 60);
    useBackend("native");
    const step = () => valueAndGrad(loss(p, c))(...p.args);
    // ArrayBuffer backing stores are swept concurrently after a full GC: let the sweeper finish before reading
    const settle = async (): Promise<NodeJS.MemoryUsage> => {
      for (let i = 0; i < 3; i++) {
        gc();
        await new Promise((r) => setTimeout(r, 10));
      }
      return process.memoryUsage();
    };
    for (let i = 0; i < 300; i++) step(); // V8's heap grows to its steady size over the first few hundred steps
    const before = await settle();
    const ws = nativeWorkspaceBytes();
    for (let i = 0; i < 300; i++) step();
    const after = await settle();
    expect(nativeWorkspaceBytes()).toBe(ws);
    expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(4 * 2 ** 20);
    expect(after.rss - before.rss).toBeLessThan(48 * 2 ** 20);
  });

  it("probes report positive peaks", () => {
    const pr = nativeProbes()!;
    expect(pr.fmaPeakGflops(0.02)).toBeGreaterThan(0);
    expect(pr.readBandwidthGBs(16 * 2 ** 20)).toBeGreaterThan(0);
    expect(pr.readBufferGBs(new Float32Array(2 ** 20).fill(1))).toBeGreaterThan(0);
    expect(pr.readBufferGBs(new Float32Array(2 ** 18 - 1))).toBeLessThan(0); // under 1 MiB: failure
    expect(pr.bf16PeakGflops(0.02) > 0).toBe(b.cpuHasAvx512Bf16());
  });
});
