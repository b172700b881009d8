// The native backend: what only it has (ISA choice, thread-count bit identity, supports(), the addon's argument
// checks). Its kernels against the spec: test/prims at the default ISA, here the same case tables at the others.
// Skipped, with the reason in the suite name, when the addon is not built; MOEKIT_REQUIRE_NATIVE=1 turns a missing
// addon into a failure.
import { afterAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { nativeBinding, type NativeIsa } from "../../src/backends/native/binding.js";
const binding = nativeBinding();
import { nativeBackend as nativeBackendOf, nativeInfo, setNativeThreads } from "../../src/backends/native/index.js";
const nativeBackend = nativeBackendOf();
import type { TypedArray } from "../../src/core/dtype.js";
import { packageRoot } from "../../src/core/package-root.js";
import { Tensor } from "../../src/core/tensor.js";
import { Prim, type Params } from "../../src/prims/prims.js";
import { shapeRules } from "../../src/prims/shape-rules.js";
import { BMM_CASES, checkBmm, checkGmm, checkTgmm, GMM_CASES } from "../harness/matmul-cases.js";
import { Rng } from "../harness/random.js";

const info = nativeInfo();

it("native addon loads, or says why not", () => {
  if (info.available) {
    expect(nativeBackend?.name).toBe("native");
    expect(info.threads).toBeGreaterThanOrEqual(1);
  } else {
    expect(nativeBackend).toBeUndefined();
    expect(info.reason).toMatch(/\S/);
  }
});

it.runIf(process.env.MOEKIT_REQUIRE_NATIVE === "1")("native addon is available (MOEKIT_REQUIRE_NATIVE=1)", () => {
  expect(info.reason).toBeUndefined();
  expect(info.available).toBe(true);
});

const randn = (shape: number[], seed: number): Tensor => new Rng(seed).tensor(shape);
const ints = (v: number[]): Tensor => new Tensor(Int32Array.from(v), [v.length], "int32");

/** The native kernel's output for `prim` (no dispatch: unsupported inputs throw). */
function runNative<P extends Prim>(prim: P, ins: Tensor[], params: Params<P>): TypedArray {
  return nativeBackend!.run(prim, ins, params, shapeRules[prim](ins, params))[0]!;
}

function sameBits(a: TypedArray, b: TypedArray): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

const ISAS: NativeIsa[] = ["scalar", "avx2", "avx512"];

describe.skipIf(!info.available)(`native backend vs ref${info.available ? "" : ` (skipped: ${info.reason})`}`, () => {
  // The body is collected even when skipped: touch the addon only inside tests.
  const isas = info.bestIsa === undefined ? [] : ISAS.slice(0, ISAS.indexOf(info.bestIsa) + 1);
  const b = binding as NonNullable<typeof binding>;
  afterAll(() => {
    if (info.isa !== undefined) b.setIsa(info.isa);
    setNativeThreads(0);
  });

  it("supports float32 gmm, tgmm, batch_matmul (and large elementwise, see elementwise.test.ts) only", () => {
    const nb = nativeBackend!;
    const gs = ints([2]);
    expect(nb.supports(Prim.Gmm, [randn([2, 3], 1), randn([1, 3, 4], 2), gs], {} as never)).toBe(true);
    expect(nb.supports(Prim.Tgmm, [randn([2, 3], 1), randn([2, 4], 2), gs], {} as never)).toBe(true);
    expect(nb.supports(Prim.BatchMatmul, [randn([1, 2, 3], 1), randn([1, 3, 4], 2)], {} as never)).toBe(true);
    const bf = new Tensor(new Float32Array(6), [2, 3], "bfloat16");
    expect(nb.supports(Prim.Gmm, [bf, randn([1, 3, 4], 2), gs], {} as never)).toBe(false);
    const f64 = new Tensor(new Float64Array(24), [2, 3, 4], "float64");
    expect(nb.supports(Prim.BatchMatmul, [f64, f64], {} as never)).toBe(false);
    expect(nb.supports(Prim.Add, [randn([2], 1), randn([2], 2)], {} as never)).toBe(false);
    expect(nb.supports(Prim.Max, [randn([2], 1), randn([2], 2)], {} as never)).toBe(false);
    expect(() => nb.run(Prim.Max, [randn([2], 1), randn([2], 2)], {}, [{ shape: [2], dtype: "float32" }])).toThrow(
      /not implemented/,
    );
  });

  for (const isa of isas) {
    describe(`isa ${isa}`, () => {
      if (isa !== info.isa)
        it("gmm, tgmm and batch_matmul match ref in float64 (the test/prims case tables)", () => {
        b.setIsa(isa);
        for (const c of GMM_CASES) {
          for (const transposeRhs of [false, true]) checkGmm("native", c, transposeRhs, "float32", 10);
          checkTgmm("native", c, "float32", 100);
        }
        for (const shape of BMM_CASES) checkBmm("native", shape, "float32", 200);
      });

      it("results are bit-identical for 1 and 2 threads", () => {
        b.setIsa(isa);
        // Large enough (> 2 Mflop) that the pool is used.
        const gs = ints([100, 0, 150, 1, 49]);
        const lhs = randn([320, 96], 7);
        const w = randn([5, 96, 160], 8);
        const dy = randn([320, 160], 9);
        const x3 = randn([4, 64, 96], 10);
        const y3 = randn([4, 96, 80], 11);
        const runAll = (): TypedArray[] => [
          runNative(Prim.Gmm, [lhs, w, gs], { transposeRhs: false }),
          runNative(Prim.Gmm, [dy, w, gs], { transposeRhs: true }),
          runNative(Prim.Tgmm, [lhs, dy, gs], {}),
          runNative(Prim.BatchMatmul, [x3, y3], {}),
        ];
        setNativeThreads(1);
        expect(nativeInfo().threads).toBe(1);
        const one = runAll();
        setNativeThreads(2);
        expect(nativeInfo().threads).toBe(2);
        const two = runAll();
        one.forEach((r, i) => expect(sameBits(r, two[i]!), `output ${i}`).toBe(true));
      });
    });
  }

  it("each calling thread has its own context: thread count and workspace (ranks on Node workers)", async () => {
    const { Worker } = await import("node:worker_threads");
    const addon = join(packageRoot()!, "native", "build", "Release", "moekit_native.node");
    const [m, k, n] = [64, 48, 40];
    const lhs = Float32Array.from({ length: m * k }, (_, i) => Math.sin(0.37 * i));
    const rhs = Float32Array.from({ length: 2 * k * n }, (_, i) => Math.cos(0.11 * i));
    const sizes = new Int32Array([20, 44]);
    setNativeThreads(3);
    const mine = new Float32Array(m * n);
    b.gmm(lhs, rhs, sizes, m, k, n, false, mine);
    // each worker: the default count on arrival (not this thread's 3), its own setting, its own (empty) workspace
    const code = `const { parentPort, workerData: d } = require("node:worker_threads");
      const b = require(d.addon);
      const seen = b.threads();
      b.setThreads(d.threads);
      const out = new Float32Array(d.m * d.n);
      for (let i = 0; i < 20; i++) b.gmm(d.lhs, d.rhs, d.sizes, d.m, d.k, d.n, false, out);
      parentPort.postMessage({ seen, threads: b.threads(), workspace: b.workspaceBytes(), out });`;
    const run = (threads: number): Promise<{ seen: number; threads: number; workspace: number; out: Float32Array }> =>
      new Promise((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { addon, threads, lhs, rhs, sizes, m, k, n } });
        w.once("message", (r) => void w.terminate().then(() => resolve(r)));
        w.once("error", reject);
      });
    const results = await Promise.all([run(1), run(2)]);
    results.forEach((r, i) => {
      expect(r.seen).toBe(b.defaultThreads());
      expect(r.threads).toBe(i + 1);
      expect(r.workspace).toBe(0);
      expect(sameBits(r.out, mine)).toBe(true);
    });
    expect(b.threads()).toBe(3);
    setNativeThreads(0);
  });

  it("the addon checks its arguments", () => {
    const f = new Float32Array(4);
    expect(() => b.gmm(f, f, new Int32Array([1]), 2, 2, 2, false, new Float32Array(3))).toThrow(/out has 3 elements/);
    expect(() => b.bmm(f, f, 1, 2, 2, 2, f)).toThrow(/overlap/);
    expect(() => b.setThreads(-1)).toThrow();
    expect(() => b.setIsa("sse" as NativeIsa)).toThrow(/unknown ISA/);
  });
});
