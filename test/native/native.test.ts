// The native backend against the ref kernels (the spec). Skipped, with the reason in the suite name, when the
// addon is not built; MOEKIT_REQUIRE_NATIVE=1 turns a missing addon into a failure.
import { afterAll, describe, expect, it } from "vitest";
import { nativeBinding, type NativeIsa } from "../../src/backends/native/binding.js";
const binding = nativeBinding();
import { nativeBackend as nativeBackendOf, nativeInfo, setNativeThreads } from "../../src/backends/native/index.js";
const nativeBackend = nativeBackendOf();
import { refBackend } from "../../src/backends/ref/index.js";
import type { TypedArray } from "../../src/core/dtype.js";
import { ShapeError } from "../../src/core/errors.js";
import { Tensor } from "../../src/core/tensor.js";
import { Prim, type Params } from "../../src/prims/prims.js";
import { shapeRules } from "../../src/prims/shape-rules.js";

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

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

function randn(shape: number[], seed: number): Tensor {
  const next = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = next();
  return new Tensor(data, shape, "float32");
}

const ints = (v: number[]): Tensor => new Tensor(Int32Array.from(v), [v.length], "int32");

function runBoth<P extends Prim>(prim: P, ins: Tensor[], params: Params<P>): { ref: TypedArray; nat: TypedArray } {
  const outs = shapeRules[prim](ins, params);
  const ref = refBackend.run(prim, ins, params, outs)[0]!;
  const nat = nativeBackend!.run(prim, ins, params, outs)[0]!;
  return { ref, nat };
}

/** max|nat - ref| <= 1e-5 * max(1, max|ref|) * sqrt(depth), depth = contraction length. */
function expectClose(nat: TypedArray, ref: TypedArray, depth: number, what: string): void {
  expect(nat.length, what).toBe(ref.length);
  let maxRef = 0;
  let maxDiff = 0;
  for (let i = 0; i < ref.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(ref[i]!));
    const d = Math.abs(nat[i]! - ref[i]!);
    maxDiff = Number.isNaN(d) ? Infinity : Math.max(maxDiff, d);
  }
  const tol = 1e-5 * Math.max(1, maxRef) * Math.sqrt(Math.max(1, depth));
  expect(maxDiff, `${what}: max|diff| ${maxDiff} > ${tol}`).toBeLessThanOrEqual(tol);
}

function sameBits(a: TypedArray, b: TypedArray): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

interface GmmCase {
  m: number;
  k: number;
  n: number;
  gs: number[];
}

const GMM_CASES: GmmCase[] = [
  { m: 0, k: 5, n: 7, gs: [0, 0] },
  { m: 1, k: 7, n: 1, gs: [1] },
  { m: 1, k: 1, n: 7, gs: [0, 1, 0] },
  { m: 3, k: 100, n: 100, gs: [1, 2] },
  { m: 5, k: 7, n: 9, gs: [2, 0, 2] }, // a row past the sum
  { m: 9, k: 0, n: 7, gs: [4, 5] }, // k = 0
  { m: 13, k: 33, n: 31, gs: [13] },
  { m: 40, k: 17, n: 100, gs: [10, 0, 0, 17, 3] }, // rows past the sum, empty groups
  { m: 25, k: 300, n: 33, gs: [12, 13] }, // k past a contraction block
  { m: 64, k: 7, n: 65, gs: [16, 16, 16, 16] },
  { m: 30, k: 20, n: 520, gs: [7, 23] }, // n past a work item
];

const describeCase = (c: GmmCase): string => `m=${c.m} k=${c.k} n=${c.n} gs=[${c.gs.join(",")}]`;

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
      it("gmm matches ref", () => {
        b.setIsa(isa);
        let seed = 10;
        for (const c of GMM_CASES) {
          const G = c.gs.length;
          const lhs = randn([c.m, c.k], seed++);
          for (const transposeRhs of [false, true]) {
            const rhs = randn(transposeRhs ? [G, c.n, c.k] : [G, c.k, c.n], seed++);
            const { ref, nat } = runBoth(Prim.Gmm, [lhs, rhs, ints(c.gs)], { transposeRhs });
            expectClose(nat, ref, c.k, `gmm ${describeCase(c)} transposeRhs=${transposeRhs}`);
            const used = c.gs.reduce((a, x) => a + x, 0);
            expect(nat.subarray(used * c.n).every((v) => Object.is(v, 0))).toBe(true);
          }
        }
      });

      it("tgmm matches ref", () => {
        b.setIsa(isa);
        let seed = 100;
        for (const c of GMM_CASES) {
          const lhs = randn([c.m, c.k], seed++);
          const rhs = randn([c.m, c.n], seed++);
          const { ref, nat } = runBoth(Prim.Tgmm, [lhs, rhs, ints(c.gs)], {});
          expectClose(nat, ref, Math.max(0, ...c.gs), `tgmm ${describeCase(c)}`);
          // empty groups are exactly zero
          c.gs.forEach((s, g) => {
            if (s === 0) expect(nat.subarray(g * c.k * c.n, (g + 1) * c.k * c.n).every((v) => v === 0)).toBe(true);
          });
        }
      });

      it("batch_matmul matches ref", () => {
        b.setIsa(isa);
        let seed = 200;
        for (const [B, m, k, n] of [
          [0, 3, 4, 5],
          [1, 1, 1, 1],
          [2, 0, 3, 4],
          [3, 5, 0, 4],
          [2, 7, 100, 1],
          [4, 13, 31, 33],
          [1, 100, 7, 100],
        ] as const) {
          const x = randn([B, m, k], seed++);
          const y = randn([B, k, n], seed++);
          const { ref, nat } = runBoth(Prim.BatchMatmul, [x, y], {});
          expectClose(nat, ref, k, `batch_matmul [${B},${m},${k}]x[${B},${k},${n}]`);
        }
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
          runBoth(Prim.Gmm, [lhs, w, gs], { transposeRhs: false }).nat,
          runBoth(Prim.Gmm, [dy, w, gs], { transposeRhs: true }).nat,
          runBoth(Prim.Tgmm, [lhs, dy, gs], {}).nat,
          runBoth(Prim.BatchMatmul, [x3, y3], {}).nat,
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

  it("rejects bad group sizes like ref", () => {
    const lhs = randn([4, 3], 1);
    const rhs = randn([2, 3, 2], 2);
    for (const gs of [
      [-1, 2],
      [3, 2],
    ]) {
      const ins = [lhs, rhs, ints(gs)];
      const outs = shapeRules[Prim.Gmm](ins, { transposeRhs: false });
      const refErr = (() => {
        try {
          refBackend.run(Prim.Gmm, ins, { transposeRhs: false }, outs);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(refErr).toBeInstanceOf(ShapeError);
      expect(() => nativeBackend!.run(Prim.Gmm, ins, { transposeRhs: false }, outs)).toThrow(
        (refErr as Error).message,
      );
    }
  });

  it("the addon checks its arguments", () => {
    const f = new Float32Array(4);
    expect(() => b.gmm(f, f, new Int32Array([1]), 2, 2, 2, false, new Float32Array(3))).toThrow(/out has 3 elements/);
    expect(() => b.bmm(f, f, 1, 2, 2, 2, f)).toThrow(/overlap/);
    expect(() => b.setThreads(-1)).toThrow();
    expect(() => b.setIsa("sse" as NativeIsa)).toThrow(/unknown ISA/);
  });
});
