import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DType } from "../../src/core/dtype.js";
import { Tensor, tensor } from "../../src/core/tensor.js";
import { useBackend, type BackendChoice } from "../../src/backends/select.js";
import { bind1 } from "../../src/autodiff/bind.js";
import { Prim } from "../../src/prims/prims.js";
import { vjpRules } from "../../src/autodiff/vjp-rules.js";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { add, cast, greater, less, maximum, mul, where } from "../../src/ops/elementwise.js";
import { sum } from "../../src/ops/reduce.js";
import { assertGradcheck, project } from "../harness/gradcheck.js";
import { Rng } from "../harness/random.js";
import { assertAllClose, assertExact, roundTo } from "../harness/tolerance.js";
import { expectPrimError, gradCoverage } from "../harness/families.js";
import { testBackends } from "../harness/backends.js";
import { MIN_NATIVE_ELEMENTWISE } from "../../src/backends/native/kernels.js";
import { conform, conformGrad } from "../harness/conformance.js";

beforeAll(() => void useBackend("ref"));
const cov = gradCoverage("elementwise");

const SHAPES: readonly (readonly number[])[] = [[], [1], [7], [2, 3], [0, 4], [3, 1, 2]];
const FLOATS: readonly DType[] = ["float64", "float32", "bfloat16"];
const un = (p: Prim, x: Tensor): Tensor => bind1(p, [x], {} as never);
const bin = (p: Prim, a: Tensor, b: Tensor): Tensor => bind1(p, [a, b], {} as never);
const fmtShape = (s: readonly number[]): string => `[${s.join(",")}]`;

/** relative tolerance of one rounding step in each dtype (the naive formulas may differ from the kernels by an ulp) */
const ULP: Record<DType, { atol: number; rtol: number }> = {
  float64: { atol: 1e-300, rtol: 2e-15 },
  float32: { atol: 1e-38, rtol: 2 ** -23 },
  bfloat16: { atol: 1e-38, rtol: 2 ** -7 },
  int32: { atol: 0, rtol: 0 },
  int8: { atol: 0, rtol: 0 },
  uint8: { atol: 0, rtol: 0 },
};

interface UnaryCase {
  prim: Prim;
  /** independent reference formula */
  ref: (x: number) => number;
  /** input domain for random tests */
  domain: (rng: Rng, shape: readonly number[]) => Tensor;
  floatOnly: boolean;
}

const normal = (rng: Rng, s: readonly number[]): Tensor => rng.normal(s, "float64", 2);
const positive = (rng: Rng, s: readonly number[]): Tensor => rng.uniform(s, 0.1, 4);
const UNARY: readonly UnaryCase[] = [
  { prim: Prim.Neg, ref: (x) => 0 - x, domain: normal, floatOnly: false },
  { prim: Prim.Exp, ref: (x) => Math.E ** x, domain: normal, floatOnly: true },
  { prim: Prim.Log, ref: (x) => Math.log(x), domain: positive, floatOnly: true },
  { prim: Prim.Log1p, ref: (x) => Math.log(1 + x), domain: positive, floatOnly: true },
  { prim: Prim.Sqrt, ref: (x) => x ** 0.5, domain: positive, floatOnly: true },
  { prim: Prim.Tanh, ref: (x) => (Math.exp(2 * x) - 1) / (Math.exp(2 * x) + 1), domain: normal, floatOnly: true },
  { prim: Prim.Sigmoid, ref: (x) => 1 / (1 + Math.exp(-x)), domain: normal, floatOnly: true },
  { prim: Prim.Abs, ref: (x) => (x < 0 ? -x : x), domain: normal, floatOnly: false },
  { prim: Prim.Sign, ref: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0), domain: normal, floatOnly: false },
];

const onRef = (backend: BackendChoice): string => (backend === "ref" ? " and the naive formula" : "");

describe.each(testBackends())("elementwise unary kernels on %s", (backend) => {
  afterAll(() => void useBackend("ref"));
  for (const c of UNARY) {
    for (const dtype of FLOATS) {
      for (const shape of SHAPES) {
        it(`${c.prim}: ${dtype}${fmtShape(shape)} matches ref in float64${onRef(backend)}`, () => {
          const x = tensor(c.domain(new Rng(11), shape).data, shape, dtype);
          const [y] = conform(backend, (a) => un(c.prim, a!), [x]);
          expect(y!.shape).toEqual(shape);
          expect(y!.dtype).toBe(dtype);
          if (backend !== "ref") return;
          const want = Array.from(x.data, (v) => roundTo(dtype, c.ref(v)));
          assertAllClose(y!, want, ULP[dtype], `${c.prim} ${dtype}`);
        });
      }
    }
  }
});

describe("elementwise unary kernels", () => {
  it("neg, abs, sign: int32 inputs give exact int32 results", () => {
    const x = tensor([-5, -1, 0, 2, 2147483647], [5], "int32");
    expect(un(Prim.Neg, x).toArray()).toEqual([5, 1, 0, -2, -2147483647]);
    expect(un(Prim.Abs, x).toArray()).toEqual([5, 1, 0, 2, 2147483647]);
    expect(un(Prim.Sign, x).toArray()).toEqual([-1, -1, 0, 1, 1]);
    expect(un(Prim.Sign, x).dtype).toBe("int32");
  });

  const SPECIAL: readonly [Prim, number[], number[]][] = [
    [Prim.Log, [0, -1, Infinity, 1], [-Infinity, NaN, Infinity, 0]],
    [Prim.Log1p, [-1, 1e-20, -2], [-Infinity, 1e-20, NaN]],
    [Prim.Sqrt, [-1, 0, Infinity, 4], [NaN, 0, Infinity, 2]],
    [Prim.Exp, [-Infinity, 0, 1000, NaN], [0, 1, Infinity, NaN]],
    [Prim.Tanh, [Infinity, -Infinity, 0, 40], [1, -1, 0, 1]],
    [Prim.Sigmoid, [-1000, 1000, 0, -Infinity, Infinity], [0, 1, 0.5, 0, 1]],
    [Prim.Sign, [-2, 3, NaN, 0], [-1, 1, NaN, 0]],
    [Prim.Abs, [-Infinity, -0, NaN], [Infinity, 0, NaN]],
  ];
  for (const [p, xs, want] of SPECIAL) {
    it(`${p}: special values ${xs.join(", ")}`, () => {
      assertExact(un(p, tensor(xs, [xs.length], "float64")), want, p);
    });
  }

  it("sigmoid: far negative inputs keep full relative precision (exp(x)/(1+exp(x)) branch)", () => {
    const y = un(Prim.Sigmoid, tensor([-40, -700], [2], "float64"));
    assertAllClose(y, [Math.exp(-40) / (1 + Math.exp(-40)), Math.exp(-700)], { atol: 0, rtol: 1e-14 });
  });

  it("sign: signed zero is preserved (sign(-0) = -0)", () => {
    const y = un(Prim.Sign, tensor([-0, 0], [2], "float64"));
    expect(Object.is(y.data[0], -0)).toBe(true);
    expect(Object.is(y.data[1], 0)).toBe(true);
  });
});

describe("cast", () => {
  const CASES: readonly [DType, DType, number[], number[]][] = [
    ["float64", "int32", [-2.7, -0.5, 0.5, 2.7, 3, -3], [-2, 0, 0, 2, 3, -3]],
    ["float64", "float32", [0.1, 1 / 3, 1e-50, 1e40], [Math.fround(0.1), Math.fround(1 / 3), 0, Infinity]],
    // bf16 keeps 8 significant bits, round half to even
    ["float32", "bfloat16", [1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -7, 3.140625], [1, 1 + 2 ** -6, 1 + 2 ** -7, 3.140625]],
    ["int32", "float64", [-7, 0, 2147483647], [-7, 0, 2147483647]],
    ["int32", "bfloat16", [257, 3], [256, 3]],
    ["bfloat16", "float64", [1.5, -2], [1.5, -2]],
    ["float64", "float64", [0.1, -0.2], [0.1, -0.2]],
  ];
  for (const [from, to, xs, want] of CASES) {
    it(`cast: ${from} -> ${to} of ${xs.map((v) => String(v)).join(", ")}`, () => {
      const y = bind1(Prim.Cast, [tensor(xs, [xs.length], from)], { dtype: to });
      expect(y.dtype).toBe(to);
      assertExact(y, want, `cast ${from}->${to}`);
    });
  }

  it("cast: size-0 and rank-0 tensors keep their shape", () => {
    expect(bind1(Prim.Cast, [tensor([], [0, 3], "float64")], { dtype: "int32" }).shape).toEqual([0, 3]);
    expect(bind1(Prim.Cast, [tensor([2.5], [], "float64")], { dtype: "int32" }).toArray()).toEqual([2]);
  });
});

interface BinaryCase {
  prim: Prim;
  ref: (a: number, b: number) => number;
  /** operands; the divisor of div/floor_div/mod stays away from zero */
  draw: (rng: Rng, shape: readonly number[], dtype: DType) => [Tensor, Tensor];
  dtypes: readonly DType[];
  out?: DType;
}

const drawFloat = (rng: Rng, s: readonly number[], d: DType): [Tensor, Tensor] => [
  tensor(rng.normal(s, "float64", 2).data, s, d),
  tensor(rng.normal(s, "float64", 2).data, s, d),
];
// small integers (as floats) so comparisons and max/min see ties
const drawTies = (rng: Rng, s: readonly number[], d: DType): [Tensor, Tensor] => [
  tensor(rng.randint(s, -3, 4).data, s, d),
  tensor(rng.randint(s, -3, 4).data, s, d),
];
const drawDiv = (rng: Rng, s: readonly number[], d: DType): [Tensor, Tensor] => [
  tensor(rng.normal(s, "float64", 2).data, s, d),
  tensor(rng.awayFromZero(s, 0.25, 3).data, s, d),
];
const drawIntDiv = (rng: Rng, s: readonly number[]): [Tensor, Tensor] => {
  const b = Array.from(rng.randint(s, 1, 9).data, (v, i) => (i % 2 === 0 ? v : -v));
  return [rng.randint(s, -50, 51), tensor(b, s, "int32")];
};
/** floor division written from truncating division (not Math.floor(a/b) as the kernel does) */
const naiveFloorDiv = (a: number, b: number): number => {
  const q = Math.trunc(a / b);
  return a % b !== 0 && a < 0 !== b < 0 ? q - 1 : q;
};
const naiveMod = (a: number, b: number): number => {
  const r = a % b;
  return r !== 0 && r < 0 !== b < 0 ? r + b : r;
};
const ALLF: readonly DType[] = ["float64", "float32", "bfloat16"];
const BINARY: readonly BinaryCase[] = [
  { prim: Prim.Add, ref: (a, b) => a + b, draw: drawFloat, dtypes: [...ALLF, "int32"] },
  { prim: Prim.Sub, ref: (a, b) => a - b, draw: drawFloat, dtypes: [...ALLF, "int32"] },
  { prim: Prim.Mul, ref: (a, b) => a * b, draw: drawFloat, dtypes: [...ALLF, "int32"] },
  { prim: Prim.Div, ref: (a, b) => a / b, draw: drawDiv, dtypes: ALLF },
  { prim: Prim.Max, ref: (a, b) => (a >= b ? a : b), draw: drawTies, dtypes: [...ALLF, "int32"] },
  { prim: Prim.Min, ref: (a, b) => (a <= b ? a : b), draw: drawTies, dtypes: [...ALLF, "int32"] },
  { prim: Prim.FloorDiv, ref: naiveFloorDiv, draw: drawIntDiv, dtypes: ["int32"] },
  { prim: Prim.Mod, ref: naiveMod, draw: drawIntDiv, dtypes: ["int32"] },
  { prim: Prim.Less, ref: (a, b) => Number(a < b), draw: drawTies, dtypes: [...ALLF, "int32"], out: "int32" },
  { prim: Prim.LessEqual, ref: (a, b) => Number(a <= b), draw: drawTies, dtypes: [...ALLF, "int32"], out: "int32" },
  { prim: Prim.Equal, ref: (a, b) => Number(a === b), draw: drawTies, dtypes: [...ALLF, "int32"], out: "int32" },
  { prim: Prim.Greater, ref: (a, b) => Number(a > b), draw: drawTies, dtypes: [...ALLF, "int32"], out: "int32" },
];

/** n float32 values from random bit patterns (NaNs, infinities, denormals of both signs), plus explicit specials. */
function wildFloats(rng: Rng, n: number): Tensor {
  const x = new Float32Array(rng.bits(n).buffer);
  const special = [NaN, Infinity, -Infinity, 0, -0, 1e-40, -3e-39, 1, -1];
  special.forEach((v, i) => (x[i * 7] = v));
  return new Tensor(x, [n], "float32");
}

describe.each(testBackends())("elementwise binary kernels on %s", (backend) => {
  afterAll(() => void useBackend("ref"));
  for (const c of BINARY) {
    for (const dtype of c.dtypes) {
      for (const shape of [[], [1], [9], [3, 4], [0, 2]] as const) {
        it(`${c.prim}: ${dtype}${fmtShape(shape)} matches ref in float64${onRef(backend)}`, () => {
          const rng = new Rng(23);
          const [a, b] = dtype === "int32" && c.draw === drawFloat ? drawTies(rng, shape, "int32") : c.draw(rng, shape, dtype);
          const [y] = conform(backend, (x, z) => bin(c.prim, x!, z!), [a, b]);
          const out = c.out ?? dtype;
          expect(y!.dtype).toBe(out);
          expect(y!.shape).toEqual(shape);
          if (backend !== "ref") return;
          const want = Array.from(a.data, (v, i) => roundTo(out, c.ref(v, b.data[i]!)));
          if (out === "int32") assertExact(y!, want, c.prim);
          else assertAllClose(y!, want, ULP[out], c.prim);
        });
      }
    }
  }

  // large float32 operands (the native kernels take them from MIN_NATIVE_ELEMENTWISE elements), over several of
  // their 65536-element chunks: correctly rounded, so bit for bit the float64 result rounded to float32 (-0 included)
  const n = 3 * (1 << 16) + 101;
  for (const p of [Prim.Add, Prim.Sub, Prim.Mul, Prim.Div]) {
    it(`${p}: float32[${n}] of random bit patterns (NaN, ±inf, ±0, denormals) equals the rounded float64 result bit for bit`, () => {
      const rng = new Rng(29);
      conform(backend, (x, z) => bin(p, x!, z!), [wildFloats(rng, n), wildFloats(rng, n)], { bits: true });
    });
  }

  for (const p of [Prim.Neg, Prim.Exp, Prim.Sigmoid]) {
    it(`${p}: float32[${n}] matches ref in float64 (native from MIN_NATIVE_ELEMENTWISE elements)`, () => {
      conform(backend, (x) => un(p, x!), [new Tensor(new Rng(31).floats(n, 4), [n], "float32")]);
    });
  }
  for (const p of [Prim.Add, Prim.Sub, Prim.Mul]) {
    it(`${p}: int32[${n}] equals ref exactly (wrapping past 2^31 as the int32 store does)`, () => {
      const rng = new Rng(32);
      conform(backend, (x, z) => bin(p, x!, z!), [rng.randint([n], -(2 ** 31), 2 ** 31), rng.randint([n], -(2 ** 31), 2 ** 31)]);
    });
  }

  const m = MIN_NATIVE_ELEMENTWISE + 3;
  for (const [p, draw] of [
    [Prim.Add, drawFloat],
    [Prim.Sub, drawFloat],
    [Prim.Mul, drawFloat],
    [Prim.Div, drawDiv],
  ] as const) {
    it(`${p}: value and gradients of <${p}(a, b), w> on float32[${m}] match ref in float64`, () => {
      const rng = new Rng(30);
      // the gradients chain up to three float32 roundings (div: -w·a/b²): 8 eps instead of 4
      conformGrad(backend, (x, z, w) => project(bin(p, x!, z!), w!), [...draw(rng, [m], "float32"), rng.tensor([m])], {
        k: [m, 1, 1, 1],
        c: 8,
      });
    });
  }
});

describe("elementwise binary kernels", () => {
  it("floor_div / mod: signs follow the divisor (numpy semantics)", () => {
    const a = tensor([7, -7, 7, -7, 6, -6], [6], "int32");
    const b = tensor([2, 2, -2, -2, 3, -3], [6], "int32");
    expect(bin(Prim.FloorDiv, a, b).toArray()).toEqual([3, -4, -4, 3, 2, 2]);
    expect(bin(Prim.Mod, a, b).toArray()).toEqual([1, 1, -1, -1, 0, 0]);
  });

  it("max / min: NaN propagates from either side", () => {
    const a = tensor([NaN, 1, NaN], [3], "float64");
    const b = tensor([1, NaN, NaN], [3], "float64");
    assertExact(bin(Prim.Max, a, b), [NaN, NaN, NaN]);
    assertExact(bin(Prim.Min, a, b), [NaN, NaN, NaN]);
  });

  it("comparisons: NaN compares false (equal(NaN, NaN) = 0)", () => {
    const a = tensor([NaN, NaN], [2], "float64");
    const b = tensor([NaN, 1], [2], "float64");
    for (const p of [Prim.Less, Prim.LessEqual, Prim.Equal, Prim.Greater]) expect(bin(p, a, b).toArray()).toEqual([0, 0]);
  });

  it("ops: scalars are weakly typed and shapes broadcast (float64 [2,1] + [3], int32 + float32 -> float32)", () => {
    const x = add(tensor([1, 2], [2, 1], "float64"), tensor([10, 20, 30], [3], "float64"));
    expect(x.shape).toEqual([2, 3]);
    expect(x.toArray()).toEqual([11, 21, 31, 12, 22, 32]);
    expect(add(tensor([1], [1], "float64"), 1).dtype).toBe("float64");
    expect(add(tensor([1], [1], "int32"), tensor([0.5], [1], "float32")).toArray()).toEqual([1.5]);
  });
});

describe.each(testBackends())("where on %s", (backend) => {
  afterAll(() => void useBackend("ref"));
  for (const dtype of ["float64", "float32", "int32"] as const) {
    for (const shape of [[], [1], [6], [2, 3], [0, 3]] as const) {
      it(`where: ${dtype}${fmtShape(shape)} selects a where cond != 0 (as ref in float64)`, () => {
        const rng = new Rng(5);
        const c = tensor(
          Array.from(rng.randint(shape, -1, 2).data, (v) => v * 3),
          shape,
          "int32",
        );
        const a = tensor(rng.randint(shape, -9, 9).data, shape, dtype);
        const b = tensor(rng.randint(shape, -9, 9).data, shape, dtype);
        const [y] = conform(backend, (cc, x, z) => bind1(Prim.Where, [cc!, x!, z!], {}), [c, a, b], { bits: true });
        assertExact(
          y!,
          Array.from(c.data, (v, i) => (v !== 0 ? a.data[i]! : b.data[i]!)),
        );
      });
    }
  }
});

describe("elementwise shape rules", () => {
  const f64 = tensor([1, 2, 3, 4, 5, 6], [2, 3], "float64");
  const f32 = tensor([1, 2, 3, 4, 5, 6], [2, 3], "float32");
  const i32 = tensor([1, 2, 3, 4, 5, 6], [2, 3], "int32");
  const t32 = tensor([1, 2, 3, 4, 5, 6], [3, 2], "float64");
  for (const p of [Prim.Exp, Prim.Log, Prim.Log1p, Prim.Sqrt, Prim.Tanh, Prim.Sigmoid]) {
    it(`${p}: rejects an int32 input`, () => expectPrimError(() => un(p, i32), p, /float/));
  }
  for (const p of [Prim.Neg, Prim.Exp, Prim.Abs, Prim.Cast]) {
    it(`${p}: rejects a wrong number of inputs`, () =>
      expectPrimError(() => bind1(p, [f64, f64], { dtype: "float64" } as never), p, /expects 1 inputs/));
  }
  for (const p of [Prim.Add, Prim.Sub, Prim.Mul, Prim.Div, Prim.Max, Prim.Min, Prim.Less, Prim.LessEqual, Prim.Equal, Prim.Greater]) {
    it(`${p}: rejects unequal shapes [2,3] vs [3,2]`, () => expectPrimError(() => bin(p, f64, t32), p, /shapes/));
    it(`${p}: rejects mixed dtypes float64 vs float32`, () => expectPrimError(() => bin(p, f64, f32), p, /dtypes/));
    it(`${p}: rejects one input`, () => expectPrimError(() => bind1(p, [f64], {} as never), p, /expects 2 inputs/));
  }
  for (const p of [Prim.FloorDiv, Prim.Mod]) {
    it(`${p}: rejects float operands`, () => expectPrimError(() => bin(p, f64, f64), p, /int32/));
  }
  it("where: rejects a float condition", () => expectPrimError(() => bind1(Prim.Where, [f64, f64, f64], {}), "where", /int32/));
  it("where: rejects mismatched shapes", () => expectPrimError(() => bind1(Prim.Where, [i32, f64, t32], {}), "where", /shapes/));
  it("where: rejects mismatched branch dtypes", () => expectPrimError(() => bind1(Prim.Where, [i32, f64, f32], {}), "where", /dtypes/));
  it("where: rejects two inputs", () => expectPrimError(() => bind1(Prim.Where, [i32, f64], {}), "where", /expects 3 inputs/));
});

describe("elementwise gradients (float64 finite differences)", () => {
  const shape = [2, 3];
  const GRAD_UNARY: readonly [Prim, (rng: Rng) => Tensor][] = [
    [Prim.Neg, (r) => r.normal(shape)],
    [Prim.Exp, (r) => r.normal(shape)],
    [Prim.Log, (r) => r.uniform(shape, 0.3, 3)],
    [Prim.Log1p, (r) => r.uniform(shape, -0.5, 3)],
    [Prim.Sqrt, (r) => r.uniform(shape, 0.3, 3)],
    [Prim.Tanh, (r) => r.normal(shape)],
    [Prim.Sigmoid, (r) => r.normal(shape, "float64", 3)],
    [Prim.Abs, (r) => r.awayFromZero(shape)],
    [Prim.Sign, (r) => r.awayFromZero(shape)],
  ];
  for (const [p, draw] of GRAD_UNARY) {
    it(`${p}: gradient matches central differences`, () => {
      const rng = new Rng(101);
      const x = draw(rng);
      const w = rng.normal(shape);
      assertGradcheck((a) => project(un(p, a), w), [x]);
      cov.mark(p);
    });
  }

  const GRAD_BINARY: readonly [Prim, (rng: Rng) => [Tensor, Tensor]][] = [
    [Prim.Add, (r) => [r.normal(shape), r.normal(shape)]],
    [Prim.Sub, (r) => [r.normal(shape), r.normal(shape)]],
    [Prim.Mul, (r) => [r.normal(shape), r.normal(shape)]],
    [Prim.Div, (r) => [r.normal(shape), r.awayFromZero(shape, 0.5, 2)]],
    // distinct operands: the finite difference is undefined at ties
    [Prim.Max, (r) => [r.normal(shape), r.normal(shape)]],
    [Prim.Min, (r) => [r.normal(shape), r.normal(shape)]],
  ];
  for (const [p, draw] of GRAD_BINARY) {
    it(`${p}: gradient in both operands matches central differences`, () => {
      const rng = new Rng(202);
      const [a, b] = draw(rng);
      const w = rng.normal(shape);
      assertGradcheck((x, y) => project(bin(p, x, y), w), [a, b]);
      cov.mark(p);
    });
  }

  it("where: gradient flows to the selected branch only, none to the condition", () => {
    const rng = new Rng(303);
    const c = rng.randint(shape, 0, 2);
    const w = rng.normal(shape);
    const r = assertGradcheck((cond, a, b) => project(bind1(Prim.Where, [cond, a, b], {}), w), [c, rng.normal(shape), rng.normal(shape)]);
    expect(Array.from(r.analytic[0]!)).toEqual(Array.from(w.data, (v, i) => (c.data[i] !== 0 ? v : 0)));
    cov.mark(Prim.Where);
  });

  it("cast: float64 -> float32 -> float64 and -> bfloat16 pass the cotangent through (dyadic inputs, exact steps)", () => {
    // k/16 and steps of 2^-4 are exact in float32 and bfloat16, so the finite difference is exact
    const x = tensor([-2, -0.5, 0.25, 1.0625, 1.5, 3], [2, 3], "float64");
    const w = tensor([1, -2, 0.5, 3, -0.25, 1.5], [2, 3], "float64");
    for (const mid of ["float32", "bfloat16"] as const) {
      const r = assertGradcheck((a) => project(bind1(Prim.Cast, [bind1(Prim.Cast, [a], { dtype: mid })], { dtype: "float64" }), w), [x], {
        eps: 2 ** -4,
        tol: 1e-15,
      });
      expect(Array.from(r.analytic[0]!)).toEqual(Array.from(w.data));
    }
    cov.mark(Prim.Cast);
  });

  it("cast: through int32 carries no gradient", () => {
    const { grads } = valueAndGrad((a: Tensor) => sum(cast(cast(a, "int32"), "float64")))(tensor([1.5, 2.5], [2], "float64"));
    expect(grads[0].toArray()).toEqual([0, 0]);
  });

  it("max / min: a tie splits the cotangent evenly (0.5 each, as jax.lax.max)", () => {
    const a = tensor([1, 2, 3], [3], "float64");
    const b = tensor([1, 5, 3], [3], "float64");
    const gMax = valueAndGrad((x: Tensor, y: Tensor) => sum(bin(Prim.Max, x, y)))(a, b).grads;
    expect(gMax[0].toArray()).toEqual([0.5, 0, 0.5]);
    expect(gMax[1].toArray()).toEqual([0.5, 1, 0.5]);
    const gMin = valueAndGrad((x: Tensor, y: Tensor) => sum(bin(Prim.Min, x, y)))(a, b).grads;
    expect(gMin[0].toArray()).toEqual([0.5, 1, 0.5]);
    expect(gMin[1].toArray()).toEqual([0.5, 0, 0.5]);
  });

  it("abs / sign: derivative at exactly 0 is 0", () => {
    const x = tensor([0, -0, 2], [3], "float64");
    assertExact(valueAndGrad((a: Tensor) => sum(un(Prim.Abs, a)))(x).grads[0], [0, 0, 1]);
    assertExact(valueAndGrad((a: Tensor) => sum(un(Prim.Sign, a)))(x).grads[0], [0, 0, 0]);
  });

  it("floor_div, mod, less, less_equal, equal, greater: no VJP rule (integer/boolean outputs)", () => {
    for (const p of [Prim.FloorDiv, Prim.Mod, Prim.Less, Prim.LessEqual, Prim.Equal, Prim.Greater]) expect(vjpRules[p]).toBeNull();
    // a comparison used as a mask passes gradient only through the selected values
    const x = tensor([-1, 2, -3, 4], [4], "float64");
    const { grads } = valueAndGrad((a: Tensor) => sum(where(greater(a, 0), mul(a, a), less(a, 0))))(x);
    assertExact(grads[0], [0, 4, 0, 8]);
  });

  it("ops: broadcasting in the forward pass sums the gradient back to the operand shape", () => {
    const a = new Rng(9).normal([2, 1]);
    const b = new Rng(10).normal([3]);
    const w = new Rng(11).normal([2, 3]);
    assertGradcheck((x, y) => project(maximum(mul(x, y), add(x, 0.1)), w), [a, b]);
  });

  it("every differentiable elementwise primitive was gradient-checked", () => cov.verify());
});
