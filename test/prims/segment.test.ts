import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Tensor, tensor } from "../../src/core/tensor.js";
import { useBackend } from "../../src/backends/select.js";
import { bind1 } from "../../src/autodiff/bind.js";
import { Prim } from "../../src/prims/prims.js";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { gmm, tgmm } from "../../src/ops/segment.js";
import { assertAdjoint } from "../harness/adjoint.js";
import { assertGradcheck, project } from "../harness/gradcheck.js";
import { Rng } from "../harness/random.js";
import { assertAllClose, assertExact, roundTo } from "../harness/tolerance.js";
import { expectPrimError, gradCoverage } from "../harness/families.js";
import { testBackends } from "../harness/backends.js";
import { conformGrad, onBackend } from "../harness/conformance.js";
import { checkGmm, checkTgmm, describeGmm, GMM_CASES } from "../harness/matmul-cases.js";

beforeAll(() => void useBackend("ref"));
const cov = gradCoverage("segment");
const i32 = (xs: number[]): Tensor => tensor(xs, [xs.length], "int32");

/** Group of each row (-1 past sum(groupSizes)). */
function rowGroups(gs: number[], m: number): number[] {
  const g = new Array<number>(m).fill(-1);
  let r = 0;
  gs.forEach((size, e) => {
    for (let i = 0; i < size; i++) g[r++] = e;
  });
  return g;
}

/** out[r, j] = Σ_p lhs[r, p] · W_g[p, j], W_g = rhs[g] or rhs[g]ᵀ; rows outside every group are 0. */
function naiveGmm(lhs: Tensor, rhs: Tensor, gs: number[], transposeRhs: boolean): number[] {
  const [m, k] = lhs.shape as [number, number];
  const n = transposeRhs ? rhs.shape[1]! : rhs.shape[2]!;
  const groups = rowGroups(gs, m);
  const out: number[] = [];
  for (let r = 0; r < m; r++) {
    const g = groups[r]!;
    for (let j = 0; j < n; j++) {
      let acc = 0;
      if (g >= 0) {
        for (let p = 0; p < k; p++) {
          const w = transposeRhs ? rhs.data[(g * n + j) * k + p]! : rhs.data[(g * k + p) * n + j]!;
          acc += lhs.data[r * k + p]! * w;
        }
      }
      out.push(acc);
    }
  }
  return out;
}

/** out[g, p, j] = Σ_{r in group g} lhs[r, p] · rhs[r, j] */
function naiveTgmm(lhs: Tensor, rhs: Tensor, gs: number[]): number[] {
  const [m, k] = lhs.shape as [number, number];
  const n = rhs.shape[1]!;
  const groups = rowGroups(gs, m);
  const out = new Array<number>(gs.length * k * n).fill(0);
  for (let r = 0; r < m; r++) {
    const g = groups[r]!;
    if (g < 0) continue;
    for (let p = 0; p < k; p++)
      for (let j = 0; j < n; j++) out[(g * k + p) * n + j] = out[(g * k + p) * n + j]! + lhs.data[r * k + p]! * rhs.data[r * n + j]!;
  }
  return out;
}

describe.each(testBackends())("gmm on %s", (backend) => {
  afterAll(() => void useBackend("ref"));
  for (const c of GMM_CASES) {
    for (const transposeRhs of [false, true]) {
      for (const dtype of ["float64", "float32", "bfloat16"] as const) {
        it(`gmm: ${c.what} (${describeGmm(c)}, transposeRhs=${transposeRhs}, ${dtype}) matches ref in float64${backend === "ref" ? " and the naive loop" : ""}`, () => {
          const { ins, y } = checkGmm(backend, c, transposeRhs, dtype, 81);
          expect(y.shape).toEqual([c.m, c.n]);
          expect(y.dtype).toBe(dtype);
          if (backend !== "ref") return;
          const [lhs, rhs] = ins as [Tensor, Tensor];
          assertAllClose(
            y,
            naiveGmm(lhs, rhs, c.gs, transposeRhs).map((v) => roundTo(dtype, v)),
            { atol: 1e-300, rtol: dtype === "float64" ? 1e-14 : 0 },
          );
        });
      }
    }
  }

  // the kernels check group sizes (the shape rule cannot see values): float32 operands reach the native kernels
  const lhs32 = tensor(new Array(12).fill(1), [6, 2], "float32");
  const rhs32 = tensor(new Array(12).fill(1), [3, 2, 2], "float32");
  it("gmm: sum(groupSizes) > rows throws", () =>
    expectPrimError(() => onBackend(backend, () => gmm(lhs32, rhs32, i32([3, 3, 1]))), "gmm", /sum\(groupSizes\) \(7\) > rows \(6\)/));
  it("gmm: a negative group size throws", () =>
    expectPrimError(() => onBackend(backend, () => gmm(lhs32, rhs32, i32([3, -1, 2]))), "gmm", /groupSizes\[1\] = -1 is negative/));
});

describe("gmm", () => {
  it("gmm: rows past sum(groupSizes) are exactly +0 even when lhs rows are large", () => {
    const lhs = tensor([1, 2, 1e30, -1e30, NaN, 5], [3, 2], "float64");
    const rhs = tensor([1, 0, 0, 1], [1, 2, 2], "float64");
    const y = gmm(lhs, rhs, i32([1]));
    expect(y.toArray()).toEqual([1, 2, 0, 0, 0, 0]);
    expect(Object.is(y.data[2], 0)).toBe(true);
  });

  const lhs = tensor(new Array(12).fill(1), [6, 2], "float64");
  const rhs = tensor(new Array(12).fill(1), [3, 2, 2], "float64");
  it("gmm: rejects float groupSizes (op)", () => expectPrimError(() => gmm(lhs, rhs, tensor([2, 2, 2], [3], "float64")), "gmm", /int32/));
  it("gmm: rejects float groupSizes (primitive)", () =>
    expectPrimError(() => bind1(Prim.Gmm, [lhs, rhs, tensor([2, 2, 2], [3], "float64")], { transposeRhs: false }), "gmm", /1-D int32/));
  it("gmm: rejects 2-D groupSizes", () =>
    expectPrimError(() => bind1(Prim.Gmm, [lhs, rhs, tensor([2, 2, 2], [1, 3], "int32")], { transposeRhs: false }), "gmm", /1-D int32/));
  it("gmm: rejects a rank-3 lhs", () =>
    expectPrimError(() => gmm(tensor(new Array(12).fill(1), [6, 2, 1], "float64"), rhs, i32([2, 2, 2])), "gmm", /incompatible/));
  it("gmm: rejects a contraction mismatch", () =>
    expectPrimError(() => gmm(tensor(new Array(18).fill(1), [6, 3], "float64"), rhs, i32([2, 2, 2])), "gmm", /incompatible/));
  it("gmm: rejects a contraction mismatch with transposeRhs (rhs [G,n,k])", () =>
    expectPrimError(() => gmm(lhs, tensor(new Array(18).fill(1), [3, 2, 3], "float64"), i32([2, 2, 2]), true), "gmm", /transposeRhs=true/));
  it("gmm: rejects rhs groups != groupSizes length", () =>
    expectPrimError(() => gmm(lhs, rhs, i32([3, 3])), "gmm", /rhs groups \(3\) != groupSizes \(2\)/));
  it("gmm: rejects mixed dtypes", () =>
    expectPrimError(() => gmm(lhs, tensor(new Array(12).fill(1), [3, 2, 2], "float32"), i32([2, 2, 2])), "gmm", /dtypes/));
});

describe.each(testBackends())("tgmm on %s", (backend) => {
  afterAll(() => void useBackend("ref"));
  for (const c of GMM_CASES) {
    for (const dtype of ["float64", "float32"] as const) {
      it(`tgmm: ${c.what} (${describeGmm(c)}, ${dtype}) matches ref in float64${backend === "ref" ? " and the naive loop" : ""}`, () => {
        const { ins, y } = checkTgmm(backend, c, dtype, 82);
        expect(y.shape).toEqual([c.gs.length, c.k, c.n]);
        if (backend !== "ref") return;
        const [lhs, rhs] = ins as [Tensor, Tensor];
        assertAllClose(
          y,
          naiveTgmm(lhs, rhs, c.gs).map((v) => roundTo(dtype, v)),
          { atol: 1e-300, rtol: dtype === "float64" ? 1e-14 : 0 },
        );
      });
    }
  }

  const lhs32 = tensor(new Array(8).fill(1), [4, 2], "float32");
  const rhs32 = tensor(new Array(12).fill(1), [4, 3], "float32");
  it("tgmm: sum(groupSizes) > rows throws", () =>
    expectPrimError(() => onBackend(backend, () => tgmm(lhs32, rhs32, i32([3, 2]))), "tgmm", /sum\(groupSizes\) \(5\) > rows \(4\)/));
  it("tgmm: a negative group size throws", () =>
    expectPrimError(() => onBackend(backend, () => tgmm(lhs32, rhs32, i32([-1, 2]))), "tgmm", /groupSizes\[0\] = -1 is negative/));
});

describe("tgmm", () => {
  it("tgmm: empty groups give exact zeros; rows past sum(groupSizes) do not contribute", () => {
    const lhs = tensor([1, 2, 3, 4, 5, 6], [3, 2], "float64");
    const rhs = tensor([1, 1, 1e30], [3, 1], "float64");
    const y = tgmm(lhs, rhs, i32([0, 2, 0]));
    expect(y.shape).toEqual([3, 2, 1]);
    expect(y.toArray()).toEqual([0, 0, 4, 6, 0, 0]);
  });

  const lhs = tensor(new Array(8).fill(1), [4, 2], "float64");
  const rhs = tensor(new Array(12).fill(1), [4, 3], "float64");
  it("tgmm: rejects operands with different row counts", () =>
    expectPrimError(() => tgmm(lhs, tensor(new Array(9).fill(1), [3, 3], "float64"), i32([2, 1])), "tgmm", /share rows/));
  it("tgmm: rejects a rank-3 operand", () =>
    expectPrimError(() => tgmm(lhs, tensor(new Array(12).fill(1), [4, 3, 1], "float64"), i32([4])), "tgmm"));
  it("tgmm: rejects float groupSizes", () =>
    expectPrimError(() => bind1(Prim.Tgmm, [lhs, rhs, tensor([4], [1], "float64")], {}), "tgmm", /1-D int32/));
  it("tgmm: rejects mixed dtypes", () =>
    expectPrimError(() => tgmm(lhs, tensor(new Array(12).fill(1), [4, 3], "float32"), i32([4])), "tgmm", /dtypes/));
});

describe.each(testBackends())("segment gradients on %s against ref in float64", (backend) => {
  // float32 operands (the native kernels' dtype) over an empty group and rows past the sum; the cotangent w is an input
  const c = GMM_CASES.find((x) => x.m === 40)!;
  for (const transposeRhs of [false, true]) {
    it(`gmm: value and gradients of <gmm(x, W), w> (transposeRhs=${transposeRhs})`, () => {
      const rng = new Rng(85);
      const G = c.gs.length;
      const ins = [rng.tensor([c.m, c.k]), rng.tensor(transposeRhs ? [G, c.n, c.k] : [G, c.k, c.n]), i32(c.gs), rng.tensor([c.m, c.n])];
      const depth = Math.max(c.m, c.k, c.n);
      conformGrad(backend, (l, r, g, w) => project(gmm(l!, r!, g!, transposeRhs), w!), ins, {
        k: [c.m * c.k * c.n, depth, depth, 1, depth],
        nmse: true,
      });
    });
  }
  it("tgmm: value and gradients of <tgmm(x, y), w>", () => {
    const rng = new Rng(86);
    const ins = [rng.tensor([c.m, c.k]), rng.tensor([c.m, c.n]), i32(c.gs), rng.tensor([c.gs.length, c.k, c.n])];
    const depth = Math.max(c.m, c.k, c.n);
    conformGrad(backend, (l, r, g, w) => project(tgmm(l!, r!, g!), w!), ins, { k: [c.m * c.k * c.n, depth, depth, 1, depth], nmse: true });
  });
});

describe("segment gradients and adjoints", () => {
  const gs = i32([2, 0, 3]); // an empty group and one row past the sum (m = 6)
  for (const transposeRhs of [false, true]) {
    it(`gmm: gradient in lhs and rhs matches central differences (transposeRhs=${transposeRhs}, empty group, row past sum)`, () => {
      const rng = new Rng(91);
      const rhs = rng.normal(transposeRhs ? [3, 2, 3] : [3, 3, 2]);
      const w = rng.normal([6, 2]);
      const r = assertGradcheck((l, rr, g) => project(gmm(l, rr, g, transposeRhs), w), [rng.normal([6, 3]), rhs, gs]);
      // the row past the sum gets no gradient; the empty group's weights get none
      expect(Array.from(r.analytic[0]!.subarray(15, 18))).toEqual([0, 0, 0]);
      expect(Array.from(r.analytic[1]!.subarray(6, 12))).toEqual([0, 0, 0, 0, 0, 0]);
      cov.mark(Prim.Gmm);
    });

    it(`gmm: adjoint identity in lhs (rhs fixed, transposeRhs=${transposeRhs})`, () => {
      const rng = new Rng(92);
      const rhs = rng.normal(transposeRhs ? [3, 2, 3] : [3, 3, 2]);
      assertAdjoint((l) => gmm(l, rhs, gs, transposeRhs), [rng.normal([6, 3])]);
    });

    it(`gmm: adjoint identity in rhs (lhs fixed, transposeRhs=${transposeRhs})`, () => {
      const rng = new Rng(93);
      const lhs = rng.normal([6, 3]);
      assertAdjoint((r) => gmm(lhs, r, gs, transposeRhs), [rng.normal(transposeRhs ? [3, 2, 3] : [3, 3, 2])]);
    });
  }
  it("gmm: gradient with all groups empty is zero for both operands", () => {
    const { grads } = valueAndGrad((l: Tensor, r: Tensor) => project(gmm(l, r, i32([0, 0])), tensor([1, 1, 1, 1], [2, 2], "float64")))(
      new Rng(94).normal([2, 2]),
      new Rng(95).normal([2, 2, 2]),
    );
    assertExact(grads[0], [0, 0, 0, 0]);
    assertExact(grads[1], new Array<number>(8).fill(0));
  });

  it("tgmm: gradient in lhs and rhs matches central differences (empty group, row past sum)", () => {
    const rng = new Rng(96);
    const w = rng.normal([3, 3, 2]);
    const r = assertGradcheck((l, rr, g) => project(tgmm(l, rr, g), w), [rng.normal([6, 3]), rng.normal([6, 2]), gs]);
    expect(Array.from(r.analytic[0]!.subarray(15, 18))).toEqual([0, 0, 0]);
    expect(Array.from(r.analytic[1]!.subarray(10, 12))).toEqual([0, 0]);
    cov.mark(Prim.Tgmm);
  });

  it("tgmm: adjoint identity in lhs (rhs fixed)", () => {
    const rng = new Rng(97);
    const rhs = rng.normal([6, 2]);
    assertAdjoint((l) => tgmm(l, rhs, gs), [rng.normal([6, 3])]);
  });

  it("tgmm: adjoint identity in rhs (lhs fixed)", () => {
    const rng = new Rng(98);
    const lhs = rng.normal([6, 3]);
    assertAdjoint((r) => tgmm(lhs, r, gs), [rng.normal([6, 2])]);
  });

  it("gmm and tgmm are each other's transposes: <gmm(x, W), y> = <W, tgmm(x, y)>", () => {
    const rng = new Rng(99);
    const x = rng.normal([6, 3]);
    const W = rng.normal([3, 3, 2]);
    const y = rng.normal([6, 2]);
    const dot = (a: Tensor, b: Tensor): number => a.toArray().reduce((acc, v, i) => acc + v * b.data[i]!, 0);
    const lhs = dot(gmm(x, W, gs), y);
    const rhs = dot(W, tgmm(x, y, gs));
    expect(Math.abs(lhs - rhs)).toBeLessThan(1e-12 * (1 + Math.abs(lhs)));
  });

  it("every differentiable segment primitive was gradient-checked", () => cov.verify());
});
