// Self-tests of test/harness: the checkers must fail on wrong gradients and non-adjoint pairs.
import { describe, expect, it } from "vitest";
import { Tensor, tensor } from "../../src/core/tensor.js";
import { customVjp } from "../../src/autodiff/custom-vjp.js";
import { exp, mul, neg } from "../../src/ops/elementwise.js";
import { transpose } from "../../src/ops/movement.js";
import { adjointCheck, assertAdjoint } from "../harness/adjoint.js";
import { assertGradcheck, gradcheck, project } from "../harness/gradcheck.js";
import { Rng } from "../harness/random.js";
import { allclose, assertAllClose, assertIdentical, bf16, closeReport, nmse, roundTo, tolVsF64 } from "../harness/tolerance.js";
import { conform, expectConforms } from "../harness/conformance.js";

describe("harness: gradcheck", () => {
  it("gradcheck: passes a correct VJP and reports a tiny error", () => {
    const x = new Rng(1).normal([3, 2]);
    const w = new Rng(2).normal([3, 2]);
    const r = gradcheck((a) => project(exp(a), w), [x]);
    expect(r.checked).toBe(6);
    expect(r.maxRelErr).toBeLessThan(1e-7);
  });

  it("gradcheck: the 4-point stencil is more accurate than the 2-point one at the same step", () => {
    const x = new Rng(3).normal([4]);
    const w = new Rng(4).normal([4]);
    const f = (a: Tensor): Tensor => project(exp(a), w);
    const two = gradcheck(f, [x], { stencil: 2, eps: 1e-3 });
    const four = gradcheck(f, [x], { stencil: 4, eps: 1e-3 });
    expect(four.maxRelErr).toBeLessThan(two.maxRelErr / 100);
    expect(four.maxRelErr).toBeLessThan(1e-9);
  });

  it("gradcheck: detects a wrong VJP (sign flipped)", () => {
    const wrong = customVjp(
      (x: Tensor) => ({ out: mul(x, 3), res: undefined }),
      (_res, ct) => [neg(mul(ct, 3))],
    );
    const x = new Rng(5).normal([3]);
    expect(gradcheck((a) => project(wrong(a), tensor([1, 2, 3], [3], "float64")), [x]).maxRelErr).toBeGreaterThan(1);
    expect(() => assertGradcheck((a) => project(wrong(a), tensor([1, 2, 3], [3], "float64")), [x])).toThrow(/gradcheck failed/);
  });

  it("gradcheck: refuses float32 inputs (finite differences need float64)", () => {
    expect(() => gradcheck((a) => a, [tensor([1], [1], "float32")])).toThrow(/float64/);
  });
});

describe("harness: adjoint", () => {
  it("adjointCheck: detects a VJP that is not the transpose", () => {
    // forward transposes a non-square matrix, backward (wrongly) returns the cotangent reshaped
    const wrong = customVjp(
      (x: Tensor) => ({ out: transpose(x, [1, 0]), res: undefined }),
      (_res, ct) => [new Tensor(ct.data, [ct.shape[1]!, ct.shape[0]!], ct.dtype)],
    );
    const r = adjointCheck(wrong, [new Rng(6).normal([2, 3])]);
    expect(r.relErr).toBeGreaterThan(1e-3);
    expect(() => assertAdjoint(wrong, [new Rng(6).normal([2, 3])])).toThrow(/adjoint identity fails/);
  });

  it("adjointCheck: a cotangent of the wrong shape is rejected (by customVjp itself, since it checks its backward)", () => {
    const wrong = customVjp(
      (x: Tensor) => ({ out: mul(x, 2), res: undefined }),
      (_res, ct) => [new Tensor(Float64Array.from([...ct.data, 0]), [ct.size + 1], ct.dtype)],
    );
    expect(() => adjointCheck(wrong, [new Rng(7).normal([3])])).toThrow(/has shape|the backward.s cotangent 0 is \[4\], its input \[3\]/);
  });
});

describe("harness: tolerance", () => {
  it("allclose: |a - r| <= atol + rtol·|r|, NaN equal to NaN, infinities must match", () => {
    expect(allclose([1.1], [1], { atol: 0, rtol: 0.1 + 1e-12 })).toBe(true);
    expect(allclose([1.1], [1], { atol: 0, rtol: 0.09 })).toBe(false);
    expect(allclose([NaN, Infinity], [NaN, Infinity])).toBe(true);
    expect(allclose([NaN], [NaN], { equalNan: false })).toBe(false);
    expect(allclose([Infinity], [-Infinity], { atol: Infinity })).toBe(false);
    expect(closeReport([1, 2], [1]).lengthMismatch).toBe(true);
    expect(() => assertAllClose(tensor([1, 2], [2]), tensor([1, 2], [1, 2]))).toThrow(/shape/);
  });

  it("nmse: sum((a-r)^2)/sum(r^2)", () => {
    expect(nmse([1, 2], [1, 2])).toBe(0);
    expect(nmse([2, 0], [1, 1])).toBe(1);
    expect(nmse([1], [0])).toBe(1);
    expect(nmse([], [])).toBe(0);
  });

  it("bf16 / roundTo: round to nearest even, float32 first", () => {
    expect(bf16(1 + 2 ** -8)).toBe(1);
    expect(bf16(1 + 3 * 2 ** -8)).toBe(1 + 2 ** -6);
    expect(bf16(-Infinity)).toBe(-Infinity);
    expect(Number.isNaN(bf16(NaN))).toBe(true);
    expect(roundTo("float32", 0.1)).toBe(Math.fround(0.1));
    expect(roundTo("int32", 2 ** 31)).toBe(-(2 ** 31));
  });
});

describe("harness: conformance", () => {
  const f64 = (xs: number[]): Tensor => tensor(xs, [xs.length], "float64");
  const f32 = (xs: number[]): Tensor => tensor(xs, [xs.length], "float32");

  it("tolVsF64: rtol c·eps of the dtype; atol grows with sqrt(k) and the scale, floored at the smallest normal", () => {
    expect(tolVsF64("float32")).toEqual({ rtol: 4 * 2 ** -23, atol: 2 ** -126 });
    expect(tolVsF64("bfloat16", 1, 1, 2).rtol).toBe(2 * 2 ** -7);
    expect(tolVsF64("float32", 100, 3).atol).toBeCloseTo(4 * 2 ** -23 * 10 * 3, 20);
  });

  it("expectConforms: a float32 result within 4 ulp passes, 8 ulp fails; int32 must be exact", () => {
    const r = 1 / 3;
    expectConforms(f32([r * (1 + 3 * 2 ** -24)]), f64([r]));
    expect(() => expectConforms(f32([r * (1 + 2 ** -20)]), f64([r]))).toThrow(/not close/);
    expect(() => expectConforms(tensor([3], [1], "int32"), tensor([4], [1], "int32"))).toThrow(/not close/);
    expect(() => expectConforms(f32([1, 2]), f64([1, 2, 3]))).toThrow(/shape/);
  });

  it("expectConforms: matmul-like results also bound the NMSE; bits mode compares the rounded float64 bit for bit", () => {
    // each element within the k-scaled atol, but every one off: the NMSE catches it
    const want = f64(Array.from({ length: 64 }, (_, i) => i - 31.5));
    const got = f32(Array.from(want.data, (v) => v + 2e-4));
    expectConforms(got, want, { k: 4096 });
    expect(() => expectConforms(got, want, { k: 4096, nmse: true })).toThrow(/NMSE/);
    expectConforms(f32([0.1, NaN, -0]), f64([0.1, NaN, -0]), { bits: true });
    expect(() => expectConforms(f32([0]), f64([-0]), { bits: true })).toThrow(/differ/);
    expect(() => assertIdentical([Math.fround(0.1)], [0.1])).toThrow(/1 of 1 values differ/);
  });

  it("conform: runs the function on ref with float inputs widened to float64", () => {
    const seen: string[] = [];
    const f = (x: Tensor): Tensor => (seen.push(x.dtype), mul(x, 3));
    const [y] = conform("ref", f, [f32([0.1, 2])]);
    expect(seen).toEqual(["float32", "float64"]);
    expect(y!.dtype).toBe("float32");
  });
});

describe("harness: random", () => {
  it("Rng: the same seed gives the same draws; permutation is a permutation; composition sums to the total", () => {
    expect(new Rng(9).normal([5]).toArray()).toEqual(new Rng(9).normal([5]).toArray());
    expect(new Rng(9).normal([5]).toArray()).not.toEqual(new Rng(10).normal([5]).toArray());
    const p = new Rng(11).permutation(20);
    expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    const c = new Rng(12).composition(17, 4);
    expect(c.reduce((a, b) => a + b, 0)).toBe(17);
    const d = new Rng(13).distinct([30]).toArray();
    expect(new Set(d).size).toBe(30);
    expect(
      new Rng(14)
        .awayFromZero([50], 0.2)
        .toArray()
        .every((v) => Math.abs(v) >= 0.2),
    ).toBe(true);
  });

  it("Rng: floats and tensor are uniform in [-scale, scale); bits are 32-bit words", () => {
    const x = new Rng(15).floats(1000, 3);
    expect(x).toBeInstanceOf(Float32Array);
    expect(x.every((v) => v >= -3 && v < 3)).toBe(true);
    expect(Math.min(...x)).toBeLessThan(-2.9);
    expect(Math.max(...x)).toBeGreaterThan(2.9);
    const t = new Rng(16).tensor([4, 5], "bfloat16", 2);
    expect([t.dtype, t.shape]).toEqual(["bfloat16", [4, 5]]);
    expect(t.toArray().every((v) => bf16(v) === v && Math.abs(v) <= 2)).toBe(true);
    const b = new Rng(17).bits(1000);
    expect(b).toBeInstanceOf(Uint32Array);
    expect(Math.max(...b)).toBeGreaterThan(2 ** 31);
    expect(new Set(b).size).toBe(1000);
  });
});
