import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Tensor, tensor } from "../../src/core/tensor.js";
import { useBackend } from "../../src/backends/select.js";
import { bind1 } from "../../src/autodiff/bind.js";
import { Prim } from "../../src/prims/prims.js";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { max, mean, sum } from "../../src/ops/reduce.js";
import { div, exp, sub } from "../../src/ops/elementwise.js";
import { softmax } from "../../src/ops/nn.js";
import { assertAdjoint } from "../harness/adjoint.js";
import { assertGradcheck, project } from "../harness/gradcheck.js";
import { Rng } from "../harness/random.js";
import { assertAllClose, assertExact, assertIdentical } from "../harness/tolerance.js";
import { expectPrimError, gradCoverage } from "../harness/families.js";
import { indices, numel, ravel } from "../harness/naive.js";
import { testBackends } from "../harness/backends.js";
import { conform } from "../harness/conformance.js";

beforeAll(() => void useBackend("ref"));
const cov = gradCoverage("reduce");

/** Naive reduction: visit every element, accumulate into the output position of its kept indices. */
function naiveReduce(
  x: Tensor,
  axes: readonly number[],
  init: number,
  f: (a: number, v: number) => number,
): { shape: number[]; data: number[] } {
  const ax = new Set(axes.map((a) => (a < 0 ? a + x.ndim : a)));
  const shape = x.shape.filter((_, i) => !ax.has(i));
  const data = new Array<number>(numel(shape)).fill(init);
  let flat = 0;
  for (const idx of indices(x.shape)) {
    const o = ravel(
      idx.filter((_, i) => !ax.has(i)),
      shape,
    );
    data[o] = f(data[o]!, x.data[flat++]!);
  }
  return { shape, data };
}

const CASES: readonly [readonly number[], readonly number[]][] = [
  [[7], [0]],
  [[1], [0]],
  [[], []],
  [[2, 3, 4], [0]],
  [[2, 3, 4], [1]],
  [[2, 3, 4], [2]],
  [
    [2, 3, 4],
    [0, 2],
  ],
  [
    [2, 3, 4],
    [2, 0],
  ],
  [
    [2, 3, 4],
    [0, 1, 2],
  ],
  [[2, 3, 4], []],
  [[2, 3, 4], [-1]],
  [
    [3, 5],
    [1, 1],
  ],
  [[0, 3], [0]],
  [[0, 3], [1]],
  [[4, 0, 2], [1]],
];

const reduced = (shape: readonly number[], axes: readonly number[]): number => numel(axes.map((a) => shape[a < 0 ? a + shape.length : a]!));

describe.each(testBackends())("reduce_sum / reduce_max kernels on %s", (backend) => {
  afterAll(() => void useBackend("ref"));
  const naive = backend === "ref" ? " and the naive loop" : "";
  for (const [shape, axes] of CASES) {
    for (const dtype of ["float64", "float32", "int32"] as const) {
      it(`reduce_sum: ${dtype}[${shape.join(",")}] over axes [${axes.join(",")}] matches ref in float64${naive}`, () => {
        const x = tensor(new Rng(3).randint(shape, -20, 21).data, shape, dtype);
        const [y] = conform(backend, (a) => bind1(Prim.ReduceSum, [a!], { axes }), [x], { k: reduced(shape, [...new Set(axes)]) });
        expect(y!.dtype).toBe(dtype);
        if (backend !== "ref") return;
        const want = naiveReduce(x, axes, 0, (a, v) => a + v);
        expect(y!.shape).toEqual(want.shape);
        assertExact(y!, want.data);
      });
    }
    for (const dtype of ["float64", "float32"] as const) {
      it(`reduce_max: ${dtype}[${shape.join(",")}] over axes [${axes.join(",")}] matches ref in float64${naive}`, () => {
        const x = tensor(new Rng(4).normal(shape).data, shape, dtype);
        const [y] = conform(backend, (a) => bind1(Prim.ReduceMax, [a!], { axes }), [x], { bits: true });
        if (backend !== "ref") return;
        const want = naiveReduce(x, axes, -Infinity, (a, v) => (v > a ? v : a));
        expect(y!.shape).toEqual(want.shape);
        assertExact(y!, want.data);
      });
    }
  }
});

/** The softmax composition's operations along `axis`, each result rounded to the dtype (float32: Math.fround). */
function naiveSoftmax(x: Tensor, axis: number): number[] {
  const r = x.dtype === "float32" ? Math.fround : (v: number): number => v;
  const [outer, n, inner] = [numel(x.shape.slice(0, axis)), x.shape[axis]!, numel(x.shape.slice(axis + 1))];
  const y = new Array<number>(x.size);
  for (let p = 0; p < outer; p++) {
    for (let q = 0; q < inner; q++) {
      const at = (i: number): number => (p * n + i) * inner + q;
      let m = -Infinity;
      for (let i = 0; i < n; i++) m = Number.isNaN(m) || Number.isNaN(x.data[at(i)]!) ? NaN : Math.max(m, x.data[at(i)]!);
      let s = 0;
      for (let i = 0; i < n; i++) s += y[at(i)] = r(Math.exp(r(x.data[at(i)]! - m)));
      for (let i = 0; i < n; i++) y[at(i)] = r(y[at(i)]! / r(s));
    }
  }
  return y;
}

const SOFTMAX_CASES: readonly [readonly number[], number][] = [
  [[7], 0],
  [[1], 0],
  [[2, 3, 4], 0],
  [[2, 3, 4], 1],
  [[2, 3, 4], 2],
  [[8, 64], 1],
  [[3, 1], 0],
  [[0, 3], 1],
  [[4, 0], 1],
];

describe.each(testBackends())("softmax kernel on %s", (backend) => {
  afterAll(() => void useBackend("ref"));
  for (const [shape, axis] of SOFTMAX_CASES) {
    for (const dtype of ["float64", "float32"] as const) {
      it(`softmax: ${dtype}[${shape.join(",")}] along axis ${axis} conforms to float64 and is the composition's loop bit for bit`, () => {
        const x = tensor(new Rng(6).normal(shape, "float64", 4).data, shape, dtype);
        const [y] = conform(backend, (a) => bind1(Prim.Softmax, [a!], { axis }), [x], { k: shape[axis]! });
        expect(y!.dtype).toBe(dtype);
        assertIdentical(y!, naiveSoftmax(x, axis), `softmax on ${backend}`);
      });
    }
  }

  it("softmax: equals exp(x - max) / sum composed of primitives, bit for bit, NaN and infinite rows included", () => {
    useBackend(backend);
    const v = new Rng(7).normal([6, 300], "float64", 30).data;
    [v[3], v[305], v[610], v[915]] = [NaN, Infinity, -Infinity, 800];
    for (let j = 0; j < 300; j++) v[1200 + j] = -Infinity; // a row of -Infinity: NaN throughout, as composed
    for (const dtype of ["float32", "float64"] as const) {
      const x = tensor(v, [6, 300], dtype);
      const composed = div(exp(sub(x, max(x, -1, true))), sum(exp(sub(x, max(x, -1, true))), -1, true));
      assertIdentical(softmax(x), composed.data, `softmax ${dtype} on ${backend}`);
      expect(Number.isNaN(softmax(x).data[1200])).toBe(true);
    }
  });
});

describe("reduce_sum / reduce_max kernels", () => {
  it("reduce_sum: float32 accumulates in float64 (1e8 + 1 + ... stays exact before the final rounding)", () => {
    const xs = [1e8, 1, 1, 1, 1, -1e8];
    expect(bind1(Prim.ReduceSum, [tensor(xs, [6], "float32")], { axes: [0] }).item()).toBe(4);
  });

  it("reduce_max: NaN propagates; an empty reduction gives -Infinity", () => {
    assertExact(bind1(Prim.ReduceMax, [tensor([1, NaN, 3, 0, 2, 1], [2, 3], "float64")], { axes: [1] }), [NaN, 2]);
    assertExact(bind1(Prim.ReduceMax, [tensor([], [0, 2], "float64")], { axes: [0] }), [-Infinity, -Infinity]);
  });

  it("reduce_sum: bfloat16 result is rounded to bfloat16", () => {
    const y = bind1(Prim.ReduceSum, [tensor([1, 2 ** -8, 2 ** -8], [3], "bfloat16")], { axes: [0] });
    // 1 + 2^-7 is exactly representable in bf16
    expect(y.item()).toBe(1 + 2 ** -7);
  });

  it("ops: sum/max/mean accept negative axes and keepdims", () => {
    const x = tensor([1, 2, 3, 4, 5, 6], [2, 3], "float64");
    expect(sum(x, -1, true).shape).toEqual([2, 1]);
    expect(sum(x, -1, true).toArray()).toEqual([6, 15]);
    expect(max(x, 0).toArray()).toEqual([4, 5, 6]);
    expect(mean(x).item()).toBe(3.5);
    expect(mean(x, [0, -1], true).shape).toEqual([1, 1]);
    expect(sum(x, []).shape).toEqual([2, 3]);
  });
});

describe("softmax shape rule", () => {
  it("softmax: rejects bfloat16 and int32 inputs (ops' softmax composes them), an axis out of range and two inputs", () => {
    expectPrimError(
      () => bind1(Prim.Softmax, [tensor([1, 2], [2], "bfloat16")], { axis: 0 }),
      Prim.Softmax,
      /float32 or float64, got bfloat16/,
    );
    expectPrimError(() => bind1(Prim.Softmax, [tensor([1, 2], [2], "int32")], { axis: 0 }), Prim.Softmax, /got int32/);
    expectPrimError(() => bind1(Prim.Softmax, [tensor([1, 2], [1, 2])], { axis: 2 }), Prim.Softmax, /axis 2 out of range/);
    const x = tensor([1, 2]);
    expectPrimError(() => bind1(Prim.Softmax, [x, x], { axis: 0 }), Prim.Softmax, /expects 1 inputs/);
  });

  it("ops' softmax of bfloat16 values still rounds every operation (the composition)", () => {
    const x = tensor([0.5, 1.25, -3, 2], [4], "bfloat16");
    const y = softmax(x);
    expect(y.dtype).toBe("bfloat16");
    const e = exp(sub(x, max(x, -1, true)));
    assertIdentical(y, div(e, sum(e, -1, true)).data);
  });
});

describe("reduce shape rules", () => {
  const x = tensor([1, 2, 3, 4, 5, 6], [2, 3], "float64");
  for (const p of [Prim.ReduceSum, Prim.ReduceMax]) {
    it(`${p}: rejects axis 2 on a rank-2 input`, () => expectPrimError(() => bind1(p, [x], { axes: [2] }), p, /axis 2 out of range/));
    it(`${p}: rejects axis -3 on a rank-2 input`, () => expectPrimError(() => bind1(p, [x], { axes: [-3] }), p, /out of range/));
    it(`${p}: rejects a non-integer axis`, () => expectPrimError(() => bind1(p, [x], { axes: [0.5] }), p));
    it(`${p}: rejects two inputs`, () => expectPrimError(() => bind1(p, [x, x], { axes: [0] }), p, /expects 1 inputs/));
  }
});

describe("reduce gradients", () => {
  it("reduce_sum: gradient matches central differences over several axis sets", () => {
    for (const axes of [[0], [1], [0, 2], [0, 1, 2]]) {
      const rng = new Rng(17);
      const x = rng.normal([2, 3, 2]);
      const w = rng.normal(naiveReduce(x, axes, 0, (a) => a).shape);
      assertGradcheck((a) => project(bind1(Prim.ReduceSum, [a], { axes }), w), [x]);
    }
    cov.mark(Prim.ReduceSum);
  });

  it("reduce_max: gradient matches central differences (distinct values)", () => {
    for (const axes of [[0], [1], [0, 1]]) {
      const rng = new Rng(18);
      const x = rng.distinct([3, 4]);
      const w = rng.normal(naiveReduce(x, axes, 0, (a) => a).shape);
      assertGradcheck((a) => project(bind1(Prim.ReduceMax, [a], { axes }), w), [x]);
    }
    cov.mark(Prim.ReduceMax);
  });

  it("reduce_max: tied maxima share the cotangent evenly", () => {
    const x = tensor([3, 1, 3, 2, 2, 2], [2, 3], "float64");
    const { grads } = valueAndGrad((a: Tensor) => sum(bind1(Prim.ReduceMax, [a], { axes: [1] })))(x);
    assertAllClose(grads[0], [0.5, 0, 0.5, 1 / 3, 1 / 3, 1 / 3], { atol: 0, rtol: 1e-15 });
  });

  it("reduce_sum: adjoint identity (transpose is broadcast)", () => {
    for (const axes of [[0], [2], [0, 1], [0, 1, 2]])
      assertAdjoint((a) => bind1(Prim.ReduceSum, [a], { axes }), [new Rng(19).normal([3, 2, 4])]);
  });

  it("reduce_sum: gradient of a size-0 input is an empty tensor", () => {
    const { grads } = valueAndGrad((a: Tensor) => sum(bind1(Prim.ReduceSum, [a], { axes: [0] })))(tensor([], [0, 3], "float64"));
    expect(grads[0].shape).toEqual([0, 3]);
  });

  // a direct bind with negative axes (ops/reduce.ts normalises them before binding)
  it("reduce_sum: VJP with negative axes (axes [-1] on [2,3])", () => {
    const w = new Rng(20).normal([2]);
    assertGradcheck((a) => project(bind1(Prim.ReduceSum, [a], { axes: [-1] }), w), [new Rng(21).normal([2, 3])]);
  });

  it("reduce_max: VJP with negative axes (axes [-1] on [2,3])", () => {
    const w = new Rng(20).normal([2]);
    assertGradcheck((a) => project(bind1(Prim.ReduceMax, [a], { axes: [-1] }), w), [new Rng(21).distinct([2, 3])]);
  });

  it("softmax: gradient matches central differences along each axis, negative included", () => {
    for (const axis of [0, 1, -1]) {
      const rng = new Rng(22);
      const x = rng.normal([3, 4]);
      const w = rng.normal([3, 4]);
      assertGradcheck((a) => project(bind1(Prim.Softmax, [a], { axis }), w), [x]);
    }
    cov.mark(Prim.Softmax);
  });

  it("every differentiable reduce primitive was gradient-checked", () => cov.verify());
});
