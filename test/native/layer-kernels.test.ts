// The native kernels that keep the layer off the reference backend (reductions, movement, indexing, the small
// elementwise ops): each against the ref kernel on the same float32 / int32 inputs, bit for bit (exp and sigmoid
// within one ulp, as moe-kernels.h states), over several work items, on 1 and 2 threads; bad indices fail with the
// ref's messages; and a layer's forward+backward traced with nothing left on ref. (Against the spec in float64, on
// every backend: test/prims.) Skipped, with the reason in the suite name, when the addon is not built.
import { afterAll, describe, expect, it } from "vitest";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { apply } from "../../src/backends/dispatch.js";
import { MIN_NATIVE_ELEMENTWISE } from "../../src/backends/native/kernels.js";
import { nativeBackend as nativeBackendOf, nativeInfo, setNativeThreads } from "../../src/backends/native/index.js";
import { useBackend } from "../../src/backends/select.js";
import { startTrace, stopTrace } from "../../src/backends/trace.js";
import { Tensor } from "../../src/core/tensor.js";
import { moeConfig } from "../../src/moe/config.js";
import { RoutedMoE } from "../../src/moe/routed-moe.js";
import { normal, prngKey } from "../../src/nn/random.js";
import { mul } from "../../src/ops/elementwise.js";
import { sum } from "../../src/ops/reduce.js";
import { Prim, type Params } from "../../src/prims/prims.js";
import { Rng } from "../harness/random.js";
import { assertIdentical } from "../harness/tolerance.js";

const info = nativeInfo();
const native = nativeBackendOf();

/** float32 values from random bit patterns (NaN, ±inf, ±0, denormals), or normal ones with a few of those. */
function floats(rng: Rng, shape: readonly number[], wild: boolean): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = wild ? new Float32Array(rng.bits(n).buffer) : rng.floats(n, 3);
  [NaN, Infinity, -Infinity, 0, -0, 1e-40, -3e-39].forEach((v, i) => {
    if (n > 0 && (wild || i >= 3)) x[(i * 7919) % n] = v;
  });
  return new Tensor(x, shape, "float32");
}
const ints = (rng: Rng, shape: readonly number[], lo: number, hi: number): Tensor => rng.randint(shape, lo, hi);

/** The prim on ref and on native (with 1 and with 2 threads), the native outputs bit for bit the ref's. */
function sameBits<P extends Prim>(prim: P, ins: readonly Tensor[], params: Params<P>): Tensor[] {
  useBackend("ref");
  const want = apply(prim, ins, params);
  useBackend("native");
  for (const threads of [1, 2]) {
    setNativeThreads(threads);
    expect(native!.supports(prim, ins, params), `${prim} supported`).toBe(true);
    const got = apply(prim, ins, params);
    got.forEach((g, i) => {
      expect(g.shape).toEqual(want[i]!.shape);
      expect(g.dtype).toBe(want[i]!.dtype);
      assertIdentical(g, want[i]!, `${prim} output ${i} (${threads} threads)`);
    });
  }
  useBackend("ref");
  return want;
}

/** Where float32 arrays differ, by how many float32 steps at most. */
function maxUlps(a: Float32Array, b: Float32Array): number {
  const ia = new Int32Array(a.buffer, a.byteOffset, a.length);
  const ib = new Int32Array(b.buffer, b.byteOffset, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) && Number.isNaN(b[i])) continue;
    worst = Math.max(worst, (ia[i]! ^ ib[i]!) < 0 ? Infinity : Math.abs(ia[i]! - ib[i]!));
  }
  return worst;
}

describe.skipIf(!info.available)(`native layer kernels against the ref kernels${info.available ? "" : ` (skipped: ${info.reason})`}`, () => {
  afterAll(() => {
    useBackend("ref");
    setNativeThreads(0);
  });
  const rng = new Rng(41);

  // [P, R, Q] layouts: last axis, middle axis, first axis, all axes, size-1 axes around, empty reductions
  const REDUCTIONS: readonly [number[], number[]][] = [
    [[4096, 8], [1]],
    [[3, 70000], [1]],
    [[5, 300, 700], [1]],
    [[2000, 70], [0]],
    [[1, 512, 1024], [0, 1, 2]],
    [[4, 1, 6, 1, 5], [1, 2, 3]],
    [[1, 7, 1], [0, 2]],
    [[0, 9], [0]],
    [[6, 0, 3], [1]],
    [[], []],
  ];
  for (const prim of [Prim.ReduceSum, Prim.ReduceMax] as const) {
    for (const [shape, axes] of REDUCTIONS) {
      for (const wild of [false, true]) {
        it(`${prim}: float32[${shape.join(",")}] over axes [${axes.join(",")}]${wild ? " of random bit patterns" : ""} equals ref bit for bit`, () => {
          sameBits(prim, [floats(rng, shape, wild)], { axes });
        });
      }
    }
  }

  it("reduce_max: signed zeros and NaN as ref's max2 (the accumulator kept only when greater)", () => {
    const x = new Tensor(new Float32Array([0, -0, -0, 0, NaN, 1, -Infinity, -Infinity]), [4, 2], "float32");
    const [y] = sameBits(Prim.ReduceMax, [x], { axes: [1] });
    expect(Array.from(y!.data).map((v) => (Object.is(v, -0) ? "-0" : String(v)))).toEqual(["-0", "0", "NaN", "-Infinity"]);
  });

  it("reduce_sum, reduce_max: axes that are not one run stay on ref", () => {
    const x = floats(rng, [3, 4, 5], false);
    expect(native!.supports(Prim.ReduceSum, [x], { axes: [0, 2] })).toBe(false);
    expect(native!.supports(Prim.ReduceMax, [x], { axes: [1] })).toBe(true);
  });

  const n = 3 * (1 << 16) + 101;
  it(`neg: float32[${n}] of random bit patterns equals ref bit for bit`, () => {
    sameBits(Prim.Neg, [floats(rng, [n], true)], {} as never);
  });

  it(`cast: int32[${n}] to float32 (rounded past 2^24) and float32 bit patterns to int32 (truncated, wrapped, NaN and infinities 0) equal ref bit for bit`, () => {
    const i = ints(rng, [n], -(2 ** 31), 2 ** 31);
    (i.data as Int32Array).set([2 ** 24 + 1, -(2 ** 24) - 3, 2 ** 31 - 1, -(2 ** 31), 0], 0);
    sameBits(Prim.Cast, [i], { dtype: "float32" });
    const f = floats(rng, [n], true);
    (f.data as Float32Array).set([NaN, Infinity, -Infinity, -0.5, 2.5e9, -3.7e12, 1e30, -1.99], 0);
    sameBits(Prim.Cast, [f], { dtype: "int32" });
  });

  it(`cast: float32[${n}] bit patterns to bfloat16 (round half to even, NaN kept) and back equal ref bit for bit`, () => {
    const f = floats(rng, [n], true);
    (f.data as Float32Array).set([NaN, Infinity, -Infinity, -0, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4e38, 1e-40], 0);
    const [b] = sameBits(Prim.Cast, [f], { dtype: "bfloat16" });
    expect(b!.dtype).toBe("bfloat16");
    sameBits(Prim.Cast, [b!], { dtype: "float32" });
  });

  for (const prim of [Prim.Exp, Prim.Sigmoid] as const) {
    it(`${prim}: float32[${n}] within one ulp of ref (libm's exp against V8's, in double), specials exact`, () => {
      const x = floats(rng, [n], false);
      const specials = new Tensor(new Float32Array([NaN, Infinity, -Infinity, 0, -0, 100, -100, 89, -104, 1e-40]), [10], "float32");
      const big = new Tensor(new Float32Array([...x.data, ...specials.data]), [n + 10], "float32");
      useBackend("ref");
      const [want] = apply(prim, [big], {} as never);
      useBackend("native");
      const [got] = apply(prim, [big], {} as never);
      useBackend("ref");
      expect(maxUlps(got!.data as Float32Array, want!.data as Float32Array)).toBeLessThanOrEqual(1);
      assertIdentical(got!.data.subarray(n), want!.data.subarray(n), `${prim} specials`);
    });
  }

  for (const prim of [Prim.Add, Prim.Sub, Prim.Mul] as const) {
    it(`${prim}: int32[${n}] as JavaScript forms it (wrapped to int32; products past 2^53 rounded first), bit for bit`, () => {
      const a = ints(rng, [n], -(2 ** 31), 2 ** 31);
      const b = ints(rng, [n], -(2 ** 31), 2 ** 31);
      (b.data as Int32Array).set([2 ** 31 - 1, -(2 ** 31), 0, 1, 46341], 0);
      (a.data as Int32Array).set([2 ** 31 - 1, -(2 ** 31), -(2 ** 31), -1, 46341], 0);
      sameBits(prim, [a, b], {});
    });
  }

  it(`elementwise: from MIN_NATIVE_ELEMENTWISE (${MIN_NATIVE_ELEMENTWISE}) elements; int32 div stays on ref`, () => {
    const at = (d: "float32" | "int32", k: number): Tensor => new Tensor(d === "int32" ? new Int32Array(k) : new Float32Array(k), [k], d);
    const m = MIN_NATIVE_ELEMENTWISE;
    expect(native!.supports(Prim.Exp, [at("float32", m)], {} as never)).toBe(true);
    expect(native!.supports(Prim.Exp, [at("float32", m - 1)], {} as never)).toBe(false);
    expect(native!.supports(Prim.Mul, [at("int32", m), at("int32", m)], {})).toBe(true);
    expect(native!.supports(Prim.Div, [at("int32", m), at("int32", m)], {})).toBe(false);
  });

  const MOVES: readonly [number[], number[]][] = [
    [
      [1, 512, 1024],
      [0, 2, 1],
    ],
    [
      [70, 33, 5],
      [2, 0, 1],
    ],
    [
      [3, 4, 5, 6],
      [3, 1, 0, 2],
    ],
    [[300000], [0]],
    [
      [0, 4],
      [1, 0],
    ],
  ];
  for (const [shape, perm] of MOVES) {
    for (const dtype of ["float32", "int32"] as const) {
      it(`transpose: ${dtype}[${shape.join(",")}] by [${perm.join(",")}] equals ref bit for bit`, () => {
        const x = dtype === "int32" ? ints(rng, shape, -1000, 1000) : floats(rng, shape, true);
        sameBits(Prim.Transpose, [x], { perm });
      });
    }
  }

  const BROADCASTS: readonly [number[], number[]][] = [
    [
      [1, 1, 1],
      [1, 512, 1024],
    ],
    [
      [1, 300, 1],
      [1, 300, 8],
    ],
    [
      [5, 1, 7],
      [5, 3000, 7],
    ],
    [
      [1, 9],
      [40000, 9],
    ],
  ];
  for (const [from, to] of BROADCASTS) {
    it(`broadcast_to: float32[${from.join(",")}] and int32 to [${to.join(",")}] equal ref bit for bit`, () => {
      sameBits(Prim.BroadcastTo, [floats(rng, from, true)], { shape: to });
      sameBits(Prim.BroadcastTo, [ints(rng, from, -9, 9)], { shape: to });
    });
  }

  it("gather: float32 rows and int32 values by int32 indices (repeats included) equal ref bit for bit", () => {
    sameBits(Prim.Gather, [floats(rng, [300, 257], true), ints(rng, [5000], 0, 300)], {});
    sameBits(Prim.Gather, [ints(rng, [64], -50, 50), ints(rng, [32768], 0, 64)], {});
    sameBits(Prim.Gather, [floats(rng, [4, 0], false), ints(rng, [3], 0, 4)], {});
  });

  it("scatter_add: float32 rows added at repeated indices equal ref bit for bit (float64 sums in order)", () => {
    sameBits(Prim.ScatterAdd, [floats(rng, [32768], false), ints(rng, [32768], 0, 70000)], { numRows: 70000 });
    sameBits(Prim.ScatterAdd, [floats(rng, [3000, 33], false), ints(rng, [3000], 0, 50)], { numRows: 50 });
    sameBits(Prim.ScatterAdd, [floats(rng, [500, 3], true), ints(rng, [500], 0, 7)], { numRows: 7 });
    const negZero = new Tensor(new Float32Array([-0, -0, 2]), [3], "float32");
    sameBits(Prim.ScatterAdd, [negZero, new Tensor(new Int32Array([0, 1, 1]), [3], "int32")], { numRows: 3 });
  });

  it("gather, scatter_add: an index out of range fails with ref's message", () => {
    const idx = new Tensor(new Int32Array([0, 2, 9, -1]), [4], "int32");
    for (const backend of ["ref", "native"] as const) {
      useBackend(backend);
      expect(() => apply(Prim.Gather, [floats(rng, [3, 2], false), idx], {})).toThrow("[gather] index 9 at position 2 out of range [0,3)");
      expect(() => apply(Prim.ScatterAdd, [floats(rng, [4, 2], false), idx], { numRows: 3 })).toThrow(
        "[scatter_add] index 9 at position 2 out of range [0,3)",
      );
    }
    useBackend("ref");
  });

  it("iota, bincount, reshape: int32 iota on every axis, counts ignoring values out of range, storage shared", () => {
    for (const axis of [0, 1, 2, -1]) sameBits(Prim.Iota, [], { shape: [70, 300, 4], axis, dtype: "int32" });
    sameBits(Prim.Bincount, [ints(rng, [32768], -3, 70)], { length: 64 });
    sameBits(Prim.Bincount, [ints(rng, [0], 0, 1)], { length: 5 });
    const x = floats(rng, [6, 4], false);
    useBackend("native");
    expect(apply(Prim.Reshape, [x], { shape: [4, 6] })[0]!.data).toBe(x.data);
    useBackend("ref");
    expect(native!.supports(Prim.Iota, [], { shape: [3], axis: 0, dtype: "float32" })).toBe(false);
  });

  it("a layer's forward and forward+backward run no primitive on ref", () => {
    const cfg = moeConfig({ num_experts: 8, num_experts_per_tok: 2, emb_dim: 64, moe_mlp_dim: 96, dtype: "float32" });
    const moe = new RoutedMoE(cfg, { key: prngKey(3) });
    const x = normal(prngKey(4), [2, 256, 64]);
    const ct = normal(prngKey(5), [2, 256, 64]);
    useBackend("native");
    startTrace();
    valueAndGrad((xx: Tensor) => sum(mul(moe.forward(xx).output, ct)))(x);
    const entries = stopTrace();
    useBackend("ref");
    expect(entries.some((e) => e.prim === Prim.ExpertFfnBwd)).toBe(true);
    expect(entries.filter((e) => e.backend !== "native").map((e) => `${e.prim} (${e.dtypes})`)).toEqual([]);
  });
});
