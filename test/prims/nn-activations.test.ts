import { beforeAll, describe, expect, it } from "vitest";
import { Tensor, tensor } from "../../src/core/tensor.js";
import { useBackend } from "../../src/backends/select.js";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { add } from "../../src/ops/elementwise.js";
import {
  ACTIVATION_NAMES,
  celu,
  elu,
  gelu,
  getActivation,
  glu,
  hardSigmoid,
  hardSilu,
  hardTanh,
  leakyRelu,
  logSigmoid,
  logSoftmax,
  relu,
  relu6,
  selu,
  silu,
  softmax,
  softplus,
  softSign,
  sqrtSoftplus,
} from "../../src/ops/nn.js";
import { sum } from "../../src/ops/reduce.js";
import { assertGradcheck, project } from "../harness/gradcheck.js";
import { Rng } from "../harness/random.js";
import { assertAllClose, assertExact } from "../harness/tolerance.js";
import { expectPrimError } from "../harness/families.js";
import { build, ravel } from "../harness/naive.js";

beforeAll(() => void useBackend("ref"));
const f64 = (xs: number[], shape: readonly number[] = [xs.length]): Tensor => tensor(xs, shape, "float64");
const sig = (x: number): number => 1 / (1 + Math.exp(-x));
const sp = (x: number): number => Math.log(1 + Math.exp(x));

const ACT: readonly [string, (x: Tensor) => Tensor, (x: number) => number][] = [
  ["relu", relu, (x) => (x > 0 ? x : 0)],
  ["gelu", gelu, (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)))],
  ["silu", silu, (x) => x * sig(x)],
  ["softplus", softplus, sp],
  ["log_sigmoid", logSigmoid, (x) => -sp(-x)],
  ["elu", (x) => elu(x), (x) => (x > 0 ? x : Math.exp(x) - 1)],
  ["elu alpha=0.5", (x) => elu(x, 0.5), (x) => (x > 0 ? x : 0.5 * (Math.exp(x) - 1))],
  ["celu alpha=2", (x) => celu(x, 2), (x) => (x > 0 ? x : 2 * (Math.exp(x / 2) - 1))],
  ["selu", selu, (x) => 1.0507009873554805 * (x > 0 ? x : 1.6732632423543772 * (Math.exp(x) - 1))],
  ["leaky_relu", (x) => leakyRelu(x), (x) => (x >= 0 ? x : 0.01 * x)],
  ["relu6", relu6, (x) => Math.min(Math.max(x, 0), 6)],
  ["hard_sigmoid", hardSigmoid, (x) => Math.min(Math.max(x + 3, 0), 6) / 6],
  ["hard_silu", hardSilu, (x) => (x * Math.min(Math.max(x + 3, 0), 6)) / 6],
  ["hard_tanh", hardTanh, (x) => Math.min(Math.max(x, -1), 1)],
  ["soft_sign", softSign, (x) => x / (1 + Math.abs(x))],
  ["sqrtsoftplus", sqrtSoftplus, (x) => Math.sqrt(sp(x))],
];

describe("activations", () => {
  for (const [name, f, ref] of ACT) {
    it(`${name}: matches the naive formula on [-8, 8]`, () => {
      const xs = [...new Rng(111).uniform([40], -8, 8).data, -3, 0, 3, 6, -1, 1];
      const x = f64(xs);
      assertAllClose(f(x), xs.map(ref), { atol: 1e-15, rtol: 1e-13 }, name);
    });
    it(`${name}: gradient matches central differences (away from kinks)`, () => {
      const rng = new Rng(112);
      const x = rng.awayFromZero([2, 5], 0.2, 2.5);
      const w = rng.normal([2, 5]);
      assertGradcheck((a) => project(f(a), w), [x]);
    });
  }

  it("gelu: tanh approximation, gelu(1.0) = 0.8411919906082768 (float64, 1e-12)", () => {
    const y = gelu(f64([1])).item();
    expect(Math.abs(y - 0.8411919906082768)).toBeLessThan(1e-12);
    // and not the erf form (0.8413447460685429)
    expect(Math.abs(y - 0.8413447460685429)).toBeGreaterThan(1e-4);
  });

  it("relu: gradient at exactly 0 is 0 (and 1 for x > 0, 0 for x < 0)", () => {
    const { grads } = valueAndGrad((x: Tensor) => sum(relu(x)))(f64([0, -0, 2, -2]));
    assertExact(grads[0], [0, 0, 1, 0]);
  });

  it("leaky_relu: gradient at exactly 0 is 1 (x >= 0 branch)", () => {
    const { grads } = valueAndGrad((x: Tensor) => sum(leakyRelu(x)))(f64([0, -1]));
    assertAllClose(grads[0], [1, 0.01], { atol: 0, rtol: 1e-15 });
  });

  it("softplus / log_sigmoid: no overflow at ±1000", () => {
    assertAllClose(softplus(f64([1000, -1000, 0])), [1000, 0, Math.LN2], { atol: 1e-300, rtol: 1e-15 });
    assertAllClose(logSigmoid(f64([1000, -1000])), [0, -1000], { atol: 1e-300, rtol: 1e-15 });
  });

  it("glu: first half times sigmoid of the second half (last axis)", () => {
    const x = new Rng(113).normal([2, 6]);
    assertAllClose(
      glu(x),
      build([2, 3], ([r, j]) => x.data[ravel([r!, j!], [2, 6])]! * sig(x.data[ravel([r!, j! + 3], [2, 6])]!)),
      { atol: 1e-15, rtol: 1e-14 },
    );
    const w = new Rng(114).normal([2, 3]);
    assertGradcheck((a) => project(glu(a), w), [x]);
  });

  it("getActivation: every listed name resolves and keeps the shape; linear is the identity", () => {
    const x = new Rng(115).normal([2, 4]);
    for (const name of ACTIVATION_NAMES) {
      const y = getActivation(name)(x);
      expect(y.shape, name).toEqual(name === "glu" ? [2, 2] : [2, 4]);
    }
    expect(getActivation("linear")(x)).toBe(x);
  });

  it("getActivation: an unknown name throws [activation]", () =>
    expectPrimError(() => getActivation("swishy"), "activation", /unknown activation "swishy"/));
});

function naiveSoftmax(x: Tensor, axis: number): number[] {
  const ax = axis < 0 ? axis + x.ndim : axis;
  return build(x.shape, (i) => {
    let m = -Infinity;
    for (let t = 0; t < x.shape[ax]!; t++) {
      const j = [...i];
      j[ax] = t;
      m = Math.max(m, x.data[ravel(j, x.shape)]!);
    }
    let z = 0;
    for (let t = 0; t < x.shape[ax]!; t++) {
      const j = [...i];
      j[ax] = t;
      z += Math.exp(x.data[ravel(j, x.shape)]! - m);
    }
    return Math.exp(x.data[ravel(i, x.shape)]! - m) / z;
  });
}

describe("softmax", () => {
  const CASES: readonly [readonly number[], number][] = [
    [[5], -1],
    [[3, 4], -1],
    [[3, 4], 0],
    [[2, 3, 4], 1],
    [[4, 1], -1],
  ];
  for (const [shape, axis] of CASES) {
    it(`softmax: [${shape.join(",")}] axis ${axis} matches the naive formula and each row sums to 1`, () => {
      const x = new Rng(121).normal(shape, "float64", 3);
      const y = softmax(x, axis);
      assertAllClose(y, naiveSoftmax(x, axis), { atol: 1e-16, rtol: 1e-14 });
      const total = sum(y, axis);
      assertAllClose(total, new Array<number>(total.size).fill(1), { atol: 1e-15, rtol: 0 });
    });
  }
  it("softmax: float32 rows sum to 1 within float32 rounding", () => {
    const x = tensor(new Rng(122).normal([6, 9], "float64", 4).data, [6, 9], "float32");
    const total = sum(softmax(x), -1);
    assertAllClose(total, new Array<number>(6).fill(1), { atol: 1e-6, rtol: 0 });
  });
  it("softmax: invariant to a per-row shift and finite for logits of 1000", () => {
    const x = f64([1000, 1001, 999, -1000, 0, 1], [2, 3]);
    const y = softmax(x);
    expect(y.toArray().every(Number.isFinite)).toBe(true);
    assertAllClose(y, softmax(add(x, 123.5)), { atol: 1e-15, rtol: 1e-13 });
    assertAllClose(y, naiveSoftmax(x, -1), { atol: 1e-16, rtol: 1e-14 });
  });
  it("logSoftmax: equals log(softmax) and is finite for large logits", () => {
    const x = f64([1000, 1001, 999, -1000, 0, 1], [2, 3]);
    // row-wise x - max - log Σ exp(x - max)
    const want = [0, 1].flatMap((r) => {
      const row = x.toArray().slice(r * 3, r * 3 + 3);
      const m = Math.max(...row);
      const lse = Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
      return row.map((v) => v - m - lse);
    });
    assertAllClose(logSoftmax(x), want, { atol: 1e-12, rtol: 1e-13 });
    assertAllClose(logSoftmax(f64([0.5, -1, 2])), naiveSoftmax(f64([0.5, -1, 2]), -1).map(Math.log), { atol: 1e-15, rtol: 1e-14 });
  });
  it("softmax / logSoftmax: gradients match central differences (the max shift carries no gradient and needs none)", () => {
    const rng = new Rng(123);
    const x = rng.normal([3, 4]);
    const w = rng.normal([3, 4]);
    assertGradcheck((a) => project(softmax(a), w), [x]);
    assertGradcheck((a) => project(softmax(a, 0), w), [x]);
    assertGradcheck((a) => project(logSoftmax(a), w), [x]);
  });
});
