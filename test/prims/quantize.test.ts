// Quantize (abs-max, AQT and qwix) on every backend against a naive per-slice loop written here, the designed facts
// of QUANTIZATION.md (abs-max element at ±Q, half-points to even, qwix's −128), and the quantized matmuls built on
// it: exact integer products, rescaling, weight-only, grouped scales, straight-through gradients.
import { afterAll, describe, expect, it } from "vitest";
import { Tensor, tensor } from "../../src/core/tensor.js";
import { useBackend } from "../../src/backends/select.js";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { einsum } from "../../src/ops/matmul.js";
import { gmm } from "../../src/ops/segment.js";
import { cast, mul } from "../../src/ops/elementwise.js";
import { sum } from "../../src/ops/reduce.js";
import { quantize, quantizedEinsum, quantizedGmm, servedWeight, type OperandQuant } from "../../src/ops/quantize.js";
import { startTrace, stopTrace } from "../../src/backends/trace.js";
import { Rng } from "../harness/random.js";
import { foldIn, prngKey, uniform } from "../../src/nn/random.js";
import { assertAllClose, assertExact } from "../harness/tolerance.js";
import { expectPrimError, gradCoverage } from "../harness/families.js";
import { testBackends } from "../harness/backends.js";
import { quantizedWeightGmm, type QuantizedWeight } from "../../src/ops/quantized-weight.js";
import { bind } from "../../src/autodiff/bind.js";
import { Prim } from "../../src/prims/prims.js";
import { add } from "../../src/ops/elementwise.js";
import { reshape } from "../../src/ops/movement.js";

const cov = gradCoverage("quantize");
const AQT8: OperandQuant = { bits: 8, flavour: "aqt" };
const QWIX8: OperandQuant = { bits: 8, flavour: "qwix" };

/** Round half to even, spelled differently from the kernel: the nearer integer, the even one on a tie. */
function rne(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** Naive quantization: enumerate each slice's elements by multi-index; returns flat q and scales (keepdims order). */
function naiveQuantize(x: Tensor, axes: number[], q: OperandQuant): { q: number[]; s: number[] } {
  const shape = x.shape;
  const n = x.size;
  const idxOf = (flat: number): number[] => {
    const idx = new Array<number>(shape.length);
    for (let a = shape.length - 1; a >= 0; a--) {
      idx[a] = flat % shape[a]!;
      flat = Math.floor(flat / shape[a]!);
    }
    return idx;
  };
  const key = (flat: number): string =>
    idxOf(flat)
      .map((v, a) => (axes.includes(a) ? 0 : v))
      .join(",");
  const absmax = new Map<string, number>();
  for (let i = 0; i < n; i++) absmax.set(key(i), Math.max(absmax.get(key(i)) ?? 0, Math.abs(x.data[i]!)));
  const Q = 2 ** (q.bits - 1) - 0.5;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const m = absmax.get(key(i))!;
    if (m === 0) {
      out.push(0);
      continue;
    }
    const v = Math.abs(x.data[i]!) === m ? Math.sign(x.data[i]!) * Q : (x.data[i]! * Q) / m;
    if (q.flavour === "aqt") out.push(rne(Math.max(-(Q - 0.5), Math.min(Q - 0.5, v))));
    else out.push(Math.max(-(Q + 0.5), Math.min(Q - 0.5, rne(v))));
  }
  // scales in row-major keepdims order: the first element of each slice, in order of first appearance
  const s: number[] = [];
  const seen = new Set<string>();
  const sShape = shape.map((d, a) => (axes.includes(a) ? 1 : d));
  const sN = sShape.reduce((a, d) => a * d, 1);
  for (let j = 0; j < sN; j++) {
    const idx: number[] = [];
    let f = j;
    for (let a = sShape.length - 1; a >= 0; a--) {
      idx[a] = f % sShape[a]!;
      f = Math.floor(f / sShape[a]!);
    }
    const k = idx.join(",");
    if (!seen.has(k)) seen.add(k);
    const m = absmax.get(k)!;
    s.push(m === 0 ? 1 : m / Q);
  }
  return { q: out, s };
}

const CASES: [string, number[], number[], OperandQuant][] = [
  ["rows over the last axis, aqt 8", [5, 7], [1], AQT8],
  ["rows over the last axis, qwix 8", [5, 7], [1], QWIX8],
  ["columns over the first axis, aqt 4", [6, 3], [0], { bits: 4, flavour: "aqt" }],
  ["columns over the first axis, qwix 4", [6, 3], [0], { bits: 4, flavour: "qwix" }],
  ["per (expert, column) of [E,K,N]", [3, 4, 5], [1], AQT8],
  ["per column over experts and K", [3, 4, 5], [0, 1], QWIX8],
  ["two contracting axes in the middle", [2, 3, 4, 2], [1, 2], AQT8],
  ["the whole tensor", [4, 4], [0, 1], { bits: 4, flavour: "qwix" }],
];

describe.each(testBackends())("quantize on %s", (backend) => {
  afterAll(() => void useBackend("ref"));

  it.each(CASES)("%s matches the naive loop", (_n, shape, axes, q) => {
    useBackend(backend);
    const x = new Rng(shape.length * 7 + axes[0]!).tensor(shape, "float32", 3);
    const [v, s] = quantize(x, axes, q);
    const want = naiveQuantize(x, axes, q);
    expect(v.dtype).toBe("int32");
    expect(s.shape).toEqual(shape.map((d, a) => (axes.includes(a) ? 1 : d)));
    assertExact(v.data, want.q, "values");
    assertAllClose(s.data, want.s, { rtol: 1e-7, atol: 0 }, "scales");
  });

  it("the abs-max element is ±Q: aqt clips to ±127, qwix gives +127 and −128", () => {
    useBackend(backend);
    const x = tensor([-0.3, 0.7, -1.1, 0.2, 1.1, 0.5], [2, 3]);
    expect(Array.from(quantize(x, [1], AQT8)[0].data)).toEqual([-35, 81, -127, 23, 127, 58]);
    expect(Array.from(quantize(x, [1], QWIX8)[0].data)).toEqual([-35, 81, -128, 23, 127, 58]);
    expect(Array.from(quantize(x, [1], { bits: 4, flavour: "qwix" })[0].data)).toEqual([-2, 5, -8, 1, 7, 3]);
    expect(Array.from(quantize(x, [1], { bits: 4, flavour: "aqt" })[0].data)).toEqual([-2, 5, -7, 1, 7, 3]);
  });

  it("half-points on a power-of-two scale round to even", () => {
    useBackend(backend);
    // absmax 127.5/4 → s = 1/4 exactly: v = 4x
    const x = tensor([2.5 / 4, -3.5 / 4, 0.5 / 4, -0.5 / 4, 126.5 / 4, 127.5 / 4], [1, 6]);
    const [v, s] = quantize(x, [1], QWIX8);
    expect(Array.from(s.data)).toEqual([0.25]);
    expect(Array.from(v.data)).toEqual([2, -4, 0, 0, 126, 127]);
    expect(Array.from(quantize(x, [1], AQT8)[0].data)).toEqual([2, -4, 0, 0, 126, 127]);
  });

  it("an all-zero slice has scale 1 and zeros; a float64 input keeps float64 scales", () => {
    useBackend(backend);
    const [v, s] = quantize(tensor([0, 0, 0, 1, -2, 0.5], [2, 3], "float64"), [1], AQT8);
    expect(s.dtype).toBe("float64");
    expect(Array.from(s.data)).toEqual([1, 2 / 127.5]);
    expect(Array.from(v.data)).toEqual([0, 0, 0, 64, -127, 32]);
  });
});

describe("stochastic rounding", () => {
  it("is unbiased: the mean of q·s over noise draws converges to x (deterministic rounding does not)", () => {
    const x = tensor([1, 0.3, -0.77, 0.051, -0.5, 0.9], [1, 6], "float64");
    const N = 4000;
    const root = prngKey(11);
    const mean = new Array<number>(6).fill(0);
    let s = 0;
    for (let n = 0; n < N; n++) {
      const [v, sc] = quantize(x, [1], { bits: 4, flavour: "aqt" }, uniform(foldIn(root, n), [1, 6], -0.5, 0.5, "float64"));
      s = sc.data[0]!;
      v.data.forEach((q, i) => {
        // every draw rounds to one of the two neighbours of v = x / s
        expect(Math.abs(q - Math.min(7, x.data[i]! / s))).toBeLessThan(1);
        mean[i]! += (q * s) / N;
      });
    }
    // each draw's error is within ±s, so the mean's standard error is at most s/(2√N): allow 5 of them
    const bound = (5 * s) / (2 * Math.sqrt(N));
    // (the abs-max element is clipped to Q − 0.5 = 7 before the noise: its mean is 7·s, by design)
    const want = Array.from(x.data, (v, i) => (i === 0 ? 7 * s : v));
    mean.forEach((m, i) => expect(Math.abs(m - want[i]!), `element ${i}`).toBeLessThan(bound));
    const [det] = quantize(x, [1], { bits: 4, flavour: "aqt" });
    expect(Math.max(...Array.from(det.data, (q, i) => Math.abs(q * s - want[i]!)))).toBeGreaterThan(5 * bound);
  });

  it("int8 gradient products: dlhs stochastically rounded (unbiased around ct·deq(b)ᵀ), drhs float unless asked", () => {
    const rng = new Rng(12);
    const [a, b, ct] = [rng.tensor([3, 5], "float64"), rng.tensor([5, 4], "float64"), rng.tensor([3, 4], "float64")];
    const root = prngKey(13);
    const N = 300;
    const grads = (n: number, drhs: boolean): Tensor[] => {
      const grad = {
        bits: 8,
        drhs,
        noise: (shape: readonly number[], p: string) => uniform(foldIn(foldIn(root, n), p === "dlhs" ? 0 : 1), shape, -0.5, 0.5, "float64"),
      };
      return valueAndGrad((x: Tensor, y: Tensor) => sum(mul(quantizedEinsum("MK,KN->MN", x, y, { lhs: AQT8, rhs: AQT8, grad }), ct)))(a, b)
        .grads;
    };
    // E[dlhs] = ct · deq(b)ᵀ with b quantized over the dlhs product's contracting axis (N), per row of b
    const bDeq = naiveQuantize(b, [1], AQT8);
    const want = Array.from({ length: 15 }, (_, idx) => {
      const [i, k] = [Math.floor(idx / 5), idx % 5];
      let acc = 0;
      for (let j = 0; j < 4; j++) acc += ct.data[i * 4 + j]! * bDeq.q[k * 4 + j]! * bDeq.s[k]!;
      return acc;
    });
    const mean = new Array<number>(15).fill(0);
    for (let n = 0; n < N; n++) grads(n, false)[0]!.data.forEach((v, i) => (mean[i]! += v / N));
    assertAllClose(mean, want, { atol: 0.02, rtol: 0 }, "mean dlhs");
    const floatDrhs = einsum("MK,MN->KN", a, ct);
    assertAllClose(grads(0, false)[1]!.data, floatDrhs.data, { rtol: 1e-12, atol: 1e-12 }, "drhs float");
    const qDrhs = grads(0, true)[1]!;
    expect(Math.max(...Array.from(qDrhs.data, (v, i) => Math.abs(v - floatDrhs.data[i]!)))).toBeGreaterThan(1e-6);
    assertAllClose(qDrhs.data, floatDrhs.data, { atol: 0.05, rtol: 0 }, "drhs 8-bit");
    assertAllClose(grads(7, true)[0]!.data, grads(7, true)[0]!.data, { rtol: 0, atol: 0 }, "same key, same draw");
  });
});

describe("quantize errors", () => {
  it("refuses bad params and inputs, naming the primitive", () => {
    const x = tensor([1, 2], [1, 2]);
    expectPrimError(() => quantize(x, [1], { bits: 9, flavour: "aqt" }), "quantize", /bits/);
    expectPrimError(() => quantize(x, [1, -1], AQT8), "quantize", /repeat/);
    expectPrimError(() => quantize(x, [2], AQT8), "quantize");
    expectPrimError(() => quantize(tensor([1, 2], [2], "int32"), [0], AQT8), "quantize", /float/);
    expectPrimError(() => quantize(tensor([1, NaN], [1, 2]), [1], AQT8), "quantize", /NaN/);
  });
});

/** out = Σ_k qa·qb · sa·sb over "MK,KN->MN" with both operands quantized over K (naive). */
function naiveQuantMatmul(a: Tensor, b: Tensor, qa: OperandQuant | undefined, qb: OperandQuant | undefined): number[] {
  const [M, K] = a.shape as [number, number];
  const N = b.shape[1]!;
  const A = qa === undefined ? { q: Array.from(a.data), s: new Array<number>(M).fill(1) } : naiveQuantize(a, [1], qa);
  const B = qb === undefined ? { q: Array.from(b.data), s: new Array<number>(N).fill(1) } : naiveQuantize(b, [0], qb);
  const out: number[] = [];
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let acc = 0;
      for (let p = 0; p < K; p++) acc += A.q[i * K + p]! * B.q[p * N + j]!;
      out.push(acc * A.s[i]! * B.s[j]!);
    }
  }
  return out;
}

describe.each(testBackends())("quantized matmuls on %s", (backend) => {
  afterAll(() => void useBackend("ref"));

  it("int8 × int8 einsum: integer product rescaled by s_lhs·s_rhs", () => {
    useBackend(backend);
    const rng = new Rng(3);
    const a = rng.tensor([5, 9]);
    const b = rng.tensor([9, 4]);
    const got = quantizedEinsum("MK,KN->MN", a, b, { lhs: AQT8, rhs: AQT8 });
    assertAllClose(got.data, naiveQuantMatmul(a, b, AQT8, AQT8), { rtol: 2e-6, atol: 1e-6 });
  });

  it("weight-only: activations float, weights per column", () => {
    useBackend(backend);
    const rng = new Rng(4);
    const a = rng.tensor([3, 8]);
    const b = rng.tensor([8, 6]);
    const q4: OperandQuant = { bits: 4, flavour: "aqt" };
    assertAllClose(quantizedEinsum("MK,KN->MN", a, b, { rhs: q4 }).data, naiveQuantMatmul(a, b, undefined, q4), { rtol: 2e-6, atol: 1e-6 });
  });

  it.each(["float32", "bfloat16"] as const)(
    "a served %s weight (the weight-only gate) multiplies as one quantized_gmm with the einsum path's bits",
    (dtype) => {
      useBackend(backend);
      const rng = new Rng(14);
      for (const [shape, k, n, bits] of [
        [[2, 5], 300, 64, 8],
        [[1, 8], 1030, 7, 4],
        [[3], 64, 1, 8],
      ] as const) {
        const x = cast(rng.tensor([...shape, k]), dtype);
        const w = cast(rng.tensor([k, n]), dtype);
        const q = { rhs: { bits, flavour: "aqt" as const } };
        const lhsLabels = "ABC".slice(0, shape.length);
        const spec = `${lhsLabels}K,KN->${lhsLabels}N`;
        const plain = quantizedEinsum(spec, x, w, q); // not served: the einsum, then the scale product
        startTrace();
        const served = quantizedEinsum(spec, x, servedWeight(new Tensor(w.data.slice(), w.shape, w.dtype)), q);
        const prims = stopTrace().map((e) => e.prim);
        expect(prims).toContain("quantized_gmm");
        expect(prims).not.toContain("batch_matmul");
        expect(served.shape).toEqual(plain.shape);
        assertExact(served.data, plain.data);
        assertAllClose(plain.data, naiveQuantMatmul(reshape(x, [x.size / k, k]), w, undefined, q.rhs), {
          rtol: dtype === "float32" ? 1e-4 : 4e-3, // fp32 chains over k up to 1030; bfloat16: the output rounded
          atol: 1e-5,
        });
      }
    },
  );

  it("integer products are exact past K≈1040 (where float32 accumulation is not)", () => {
    useBackend(backend);
    const K = 4096;
    // s = 1 exactly (abs-max 127.5), so the result is the exact integer sum Σ q_a·q_b
    const av = Array.from({ length: K }, (_, i) => (i === 0 ? 127.5 : 127 - (i % 3)));
    const bv = Array.from({ length: K }, (_, i) => (i === 0 ? 127.5 : 123 + (i % 5)));
    const a = tensor(av, [1, K], "float64");
    const b = tensor(bv, [K, 1], "float64");
    const got = quantizedEinsum("MK,KN->MN", a, b, { lhs: AQT8, rhs: AQT8 });
    let exact = 0;
    for (let i = 0; i < K; i++) exact += Math.min(127, av[i]!) * Math.min(127, bv[i]!);
    expect(exact).toBeGreaterThan(2 ** 24);
    expect(got.data[0]).toBe(exact);
  });

  it("batched einsum scales per (batch, free) index: BSEH,EHM->BSEM", () => {
    useBackend(backend);
    const rng = new Rng(5);
    const h = rng.tensor([2, 3, 2, 4]);
    const w = rng.tensor([2, 4, 5]);
    const got = quantizedEinsum("BSEH,EHM->BSEM", h, w, { lhs: AQT8, rhs: AQT8 });
    const want: number[] = new Array<number>(2 * 3 * 2 * 5);
    for (let e = 0; e < 2; e++) {
      const he = tensor(
        Array.from({ length: 6 * 4 }, (_, i) => h.data[(Math.floor(i / 4) * 2 + e) * 4 + (i % 4)]!),
        [6, 4],
      );
      const we = tensor(Array.from(w.data.slice(e * 20, (e + 1) * 20)), [4, 5]);
      naiveQuantMatmul(he, we, AQT8, AQT8).forEach((v, i) => (want[(Math.floor(i / 5) * 2 + e) * 5 + (i % 5)] = v));
    }
    assertAllClose(got.data, want, { rtol: 2e-6, atol: 1e-6 });
  });

  it("grouped: qwix weight scales per column shared by the groups, or per (group, column)", () => {
    useBackend(backend);
    const rng = new Rng(6);
    const x = rng.tensor([7, 4]);
    const w = rng.tensor([3, 4, 5]);
    const gs = tensor([2, 0, 4], [3], "int32");
    const rows = [0, 0, -1, -1, -1, -1, -1].map((g, r) => (r < 2 ? 0 : r < 6 ? 2 : -1));
    for (const shared of [true, false]) {
      const got = quantizedGmm(x, w, gs, { lhs: QWIX8, rhs: QWIX8, rhsSharedOverGroups: shared });
      const qx = naiveQuantize(x, [1], QWIX8);
      const qw = naiveQuantize(w, shared ? [0, 1] : [1], QWIX8);
      const want: number[] = [];
      rows.forEach((g, r) => {
        for (let j = 0; j < 5; j++) {
          let acc = 0;
          if (g >= 0) for (let p = 0; p < 4; p++) acc += qx.q[r * 4 + p]! * qw.q[(g * 4 + p) * 5 + j]!;
          want.push(g < 0 ? 0 : acc * qx.s[r]! * qw.s[shared ? j : g * 5 + j]!);
        }
      });
      assertAllClose(got.data, want, { rtol: 2e-6, atol: 1e-6 }, `shared=${shared}`);
    }
  });

  it("gradients are straight-through: those of the float matmul", () => {
    useBackend(backend);
    const rng = new Rng(7);
    const [a, b, ct] = [rng.tensor([3, 6], "float64"), rng.tensor([6, 4], "float64"), rng.tensor([3, 4], "float64")];
    const q = { lhs: AQT8, rhs: AQT8 };
    const g = valueAndGrad((x: Tensor, y: Tensor) => sum(mul(quantizedEinsum("MK,KN->MN", x, y, q), ct)))(a, b).grads;
    const f = valueAndGrad((x: Tensor, y: Tensor) => sum(mul(einsum("MK,KN->MN", x, y), ct)))(a, b).grads;
    assertAllClose(g[0]!.data, f[0]!.data, { rtol: 1e-12, atol: 1e-12 });
    assertAllClose(g[1]!.data, f[1]!.data, { rtol: 1e-12, atol: 1e-12 });
    const x = rng.tensor([5, 6], "float64");
    const w = rng.tensor([2, 6, 3], "float64");
    const gs = tensor([3, 2], [2], "int32");
    const c2 = rng.tensor([5, 3], "float64");
    const gq = valueAndGrad((u: Tensor, v: Tensor) => sum(mul(quantizedGmm(u, v, gs, { lhs: QWIX8, rhs: QWIX8 }), c2)))(x, w).grads;
    const gf = valueAndGrad((u: Tensor, v: Tensor) => sum(mul(gmm(u, v, gs), c2)))(x, w).grads;
    assertAllClose(gq[0]!.data, gf[0]!.data, { rtol: 1e-12, atol: 1e-12 });
    assertAllClose(gq[1]!.data, gf[1]!.data, { rtol: 1e-12, atol: 1e-12 });
  });
});

describe("intmp's gradients (dequantizedRhsGrad)", () => {
  afterAll(() => void useBackend("ref"));
  it.each(testBackends())("%s: the input gradient takes the rhs as the forward quantized it; the weight gradient is float", (backend) => {
    useBackend(backend);
    const rng = new Rng(11);
    const W4: OperandQuant = { bits: 4, flavour: "aqt" };
    const [a, b, ct] = [rng.tensor([3, 6], "float64"), rng.tensor([6, 4], "float64"), rng.tensor([3, 4], "float64")];
    const g = valueAndGrad((x: Tensor, y: Tensor) =>
      sum(mul(quantizedEinsum("MK,KN->MN", x, y, { rhs: W4, dequantizedRhsGrad: true }), ct)),
    )(a, b).grads;
    const qb = naiveQuantize(b, [0], W4);
    const deq = tensor(
      qb.q.map((v, i) => v * qb.s[i % 4]!),
      [6, 4],
      "float64",
    );
    const want = valueAndGrad((x: Tensor, y: Tensor) => sum(mul(einsum("MK,KN->MN", x, y), ct)));
    assertAllClose(g[0]!.data, want(a, deq).grads[0]!.data, { rtol: 1e-12, atol: 1e-12 });
    assertAllClose(g[1]!.data, want(a, b).grads[1]!.data, { rtol: 1e-12, atol: 1e-12 });
    // the grouped matmul alike, per (group, column)
    const x = rng.tensor([5, 6], "float64");
    const w = rng.tensor([2, 6, 3], "float64");
    const gs = tensor([3, 2], [2], "int32");
    const c2 = rng.tensor([5, 3], "float64");
    const gq = valueAndGrad((u: Tensor, v: Tensor) => sum(mul(quantizedGmm(u, v, gs, { rhs: W4, dequantizedRhsGrad: true }), c2)))(
      x,
      w,
    ).grads;
    const qw = naiveQuantize(w, [1], W4);
    const wdeq = tensor(
      qw.q.map((v, i) => v * qw.s[Math.floor(i / 18) * 3 + (i % 3)]!),
      [2, 6, 3],
      "float64",
    );
    const gf = (v: Tensor) => valueAndGrad((u: Tensor, vv: Tensor) => sum(mul(gmm(u, vv, gs), c2)))(x, v).grads;
    assertAllClose(gq[0]!.data, gf(wdeq)[0]!.data, { rtol: 1e-12, atol: 1e-12 });
    assertAllClose(gq[1]!.data, gf(w)[1]!.data, { rtol: 1e-12, atol: 1e-12 });
    // and it differs from the unquantized operand's (4 bits: well above rounding)
    expect(Math.abs(gq[0]!.data[0]! - gf(w)[0]!.data[0]!)).toBeGreaterThan(1e-6);
  });
});

describe("quantize gradients", () => {
  it("Quantize itself is not differentiable (the matmuls above carry the straight-through rule)", () => cov.verify());
});

describe("quantized_gmm (serve mode: rhs held as codes + scales)", () => {
  /** Independent spec: dequantize every code into a float64 [G,k,n] array, then a per-row loop. */
  function naiveServed(lhs: number[][], q: number[][][], s: number[][], sizes: number[], sl?: number[]): number[][] {
    const out: number[][] = [];
    let r = 0;
    sizes.forEach((rows, g) => {
      for (let i = 0; i < rows; i++, r++) {
        const row = lhs[r]!;
        out.push(
          s[g]!.map((sj, j) =>
            Math.fround(Math.fround(row.reduce((a, x, p) => a + x * q[g]![p]![j]!, 0)) * Math.fround((sl?.[r] ?? 1) * sj)),
          ),
        );
      }
    });
    while (out.length < lhs.length) out.push(s[0]!.map(() => 0));
    return out;
  }
  let seed = 7;
  const uni = (lo: number, hi: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return lo + ((hi - lo) * seed) / 2 ** 31;
  };
  const pack4 = (q: number[][][], n: number): Uint8Array => {
    const w = Math.ceil(n / 2);
    const out = new Uint8Array(q.length * q[0]!.length * w);
    q.flat().forEach((row, i) => row.forEach((v, j) => (out[i * w + (j >> 1)]! |= (v & 0xf) << ((j & 1) * 4))));
    return out;
  };
  const cases: [string, number, number, number[], 8 | 4][] = [
    ["int8, odd sizes", 7, 5, [2, 0, 3], 8],
    ["int4, odd n (last byte half used)", 9, 7, [1, 3, 2], 4],
    ["int4, empty groups and padding rows", 3, 4, [0, 2, 0], 4],
    ["int8, k past one decode block", 130, 3, [2, 1], 8],
  ];
  it.each(cases)("%s: equals dequantize-then-matmul", (_n, k, n, sizes, bits) => {
    const G = sizes.length;
    const m = sizes.reduce((a, b) => a + b, 0) + 1;
    const lim = bits === 8 ? 127 : 7;
    const q = Array.from({ length: G }, () =>
      Array.from({ length: k }, () => Array.from({ length: n }, () => Math.round(uni(-lim - 1, lim)))),
    );
    const s = Array.from({ length: G }, () => Array.from({ length: n }, () => Math.fround(uni(0.01, 0.2))));
    const lhs = Array.from({ length: m }, () => Array.from({ length: k }, () => Math.fround(uni(-2, 2))));
    const codes =
      bits === 8 ? new Tensor(Int8Array.from(q.flat(2)), [G, k, n], "int8") : new Tensor(pack4(q, n), [G, k, Math.ceil(n / 2)], "uint8");
    const w: QuantizedWeight = { format: bits === 8 ? "int8" : "int4", shape: [G, k, n], codes, scales: tensor(s.flat(), [G, 1, n]) };
    const got = quantizedWeightGmm(tensor(lhs), w, tensor(sizes, [G], "int32"));
    assertExact(got, tensor(naiveServed(lhs, q, s, sizes)));
    // activations quantized per row at run time: integer rows times their scales
    const x = tensor(lhs);
    const [v, sx] = quantize(x, [1], { bits: 8, flavour: "aqt" });
    const rows = Array.from({ length: m }, (_, r) => Array.from(v.data.slice(r * k, (r + 1) * k)));
    assertExact(quantizedWeightGmm(x, w, tensor(sizes, [G], "int32"), 8), tensor(naiveServed(rows, q, s, sizes, Array.from(sx.data))));
  });

  it("refuses wrong layouts, and int8/uint8 codes anywhere but quantized_gmm and movement", () => {
    const codes = new Tensor(new Int8Array(12), [1, 3, 4], "int8");
    const args = (c: Tensor, s: Tensor): Tensor[] => [tensor([[1, 2, 3]]), c, s, tensor([1], [1], "int32")];
    expectPrimError(
      () => bind(Prim.QuantizedGmm, args(codes, tensor([1, 1, 1], [1, 1, 3])), { format: "int8", columns: 4 }),
      "quantized_gmm",
      /scales float32\[1,1,3\]: expected float32\[1,1,4\]/,
    );
    expectPrimError(
      () => bind(Prim.QuantizedGmm, args(codes, tensor([1, 1, 1, 1], [1, 1, 4])), { format: "int4", columns: 4 }),
      "quantized_gmm",
      /int4 codes int8\[1,3,4\]: expected uint8\[1,3,2\]/,
    );
    expect(() => add(codes, codes)).toThrow(/\[add\] does not take int8 codes/);
    expect(reshape(codes, [3, 4]).data).toBeInstanceOf(Int8Array);
  });
});

describe("quantized_gmm: checkpoint block formats (DeepSeek-V3 FP8, GPT-OSS MXFP4)", () => {
  /** e4m3fn bits -> value, spelled through the binary layout: 2^(e−7)·1.m, subnormals 2^−6·0.m. */
  const e4m3 = (b: number): number => {
    const sign = b >= 128 ? -1 : 1;
    const e = (b & 0x78) / 8;
    const m = (b & 7) / 8;
    if (e === 15 && m === 7 / 8) return NaN;
    return sign * (e === 0 ? m * 2 ** -6 : (1 + m) * 2 ** (e - 7));
  };
  const fp4 = (v: number): number => [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6][v]!;
  let seed = 11;
  const byte = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % 256;
  };

  it.each([
    ["fp8_e4m3", 200, 130, [3, 0, 2]],
    ["fp8_e4m3", 5, 7, [2, 2]],
    ["mxfp4", 96, 5, [1, 4]],
  ] as const)("%s k=%i n=%i: equals the dequantize-then-float loop", (format, k, n, sizes) => {
    const G = sizes.length;
    const m = sizes.reduce((a: number, b) => a + b, 0);
    // W[g][p][j] from the stored form, decoded here
    const W: number[][][] = [];
    let codes: Uint8Array;
    let scales: Tensor;
    if (format === "fp8_e4m3") {
      codes = Uint8Array.from({ length: G * n * k }, () => {
        const b = byte();
        return (b & 0x7f) === 0x7f ? b - 1 : b; // no NaN codes
      });
      const [nb, kb] = [Math.ceil(n / 128), Math.ceil(k / 128)];
      const s = Array.from({ length: G * nb * kb }, () => Math.fround(0.001 + byte() / 5000));
      scales = tensor(s, [G, nb, kb]);
      for (let g = 0; g < G; g++)
        W.push(
          Array.from({ length: k }, (_, p) =>
            Array.from(
              { length: n },
              (_, j) => e4m3(codes[(g * n + j) * k + p]!) * s[(g * nb + Math.floor(j / 128)) * kb + Math.floor(p / 128)]!,
            ),
          ),
        );
    } else {
      codes = Uint8Array.from({ length: (G * n * k) / 2 }, byte);
      const e8 = Uint8Array.from({ length: (G * n * k) / 32 }, () => 120 + (byte() % 10));
      scales = new Tensor(e8, [G, n, k / 32], "uint8");
      for (let g = 0; g < G; g++)
        W.push(
          Array.from({ length: k }, (_, p) =>
            Array.from({ length: n }, (_, j) => {
              const b = codes[(g * n + j) * (k / 2) + Math.floor(p / 2)]!;
              return fp4(p % 2 === 0 ? b % 16 : Math.floor(b / 16)) * 2 ** (e8[(g * n + j) * (k / 32) + Math.floor(p / 32)]! - 127);
            }),
          ),
        );
    }
    const lhs = Array.from({ length: m }, () => Array.from({ length: k }, () => Math.fround((byte() - 128) / 64)));
    const w: QuantizedWeight = {
      format,
      shape: [G, k, n],
      codes: new Tensor(codes, format === "fp8_e4m3" ? [G, n, k] : [G, n, k / 2], "uint8"),
      scales,
    };
    const got = quantizedWeightGmm(tensor(lhs), w, tensor(sizes, [G], "int32"));
    let r = 0;
    const want: number[][] = [];
    sizes.forEach((rows, g) => {
      for (let i = 0; i < rows; i++, r++)
        want.push(Array.from({ length: n }, (_, j) => lhs[r]!.reduce((a, x, p) => a + x * W[g]![p]![j]!, 0)));
    });
    assertAllClose(got, tensor(want), { rtol: 1e-5, atol: 1e-5 });
  });

  it("mxfp4 needs k a multiple of 32", () => {
    const w = [
      tensor([[1, 2]]),
      new Tensor(new Uint8Array(1), [1, 1, 1], "uint8"),
      new Tensor(new Uint8Array(1), [1, 1, 1], "uint8"),
      tensor([1], [1], "int32"),
    ];
    expectPrimError(
      () => bind(Prim.QuantizedGmm, w, { format: "mxfp4", columns: 1 }),
      "quantized_gmm",
      /mxfp4 needs k a multiple of 32, got 2/,
    );
  });
});
