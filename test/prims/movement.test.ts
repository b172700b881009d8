import { beforeAll, describe, expect, it } from "vitest";
import type { DType } from "../../src/core/dtype.js";
import { Tensor, tensor } from "../../src/core/tensor.js";
import { useBackend, type BackendChoice } from "../../src/backends/select.js";
import { bind1 } from "../../src/autodiff/bind.js";
import { Prim } from "../../src/prims/prims.js";
import { vjpRules } from "../../src/autodiff/vjp-rules.js";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { broadcastTo, concatenate, expandDims, moveAxis, pad, reshape, slice, squeeze, stack, transpose } from "../../src/ops/movement.js";
import { mul } from "../../src/ops/elementwise.js";
import { sum } from "../../src/ops/reduce.js";
import { assertAdjoint } from "../harness/adjoint.js";
import { assertGradcheck, project } from "../harness/gradcheck.js";
import { Rng } from "../harness/random.js";
import { assertAllClose, assertExact } from "../harness/tolerance.js";
import { expectPrimError, gradCoverage } from "../harness/families.js";
import { build, numel, ravel } from "../harness/naive.js";
import { testBackends } from "../harness/backends.js";
import { conform } from "../harness/conformance.js";

beforeAll(() => void useBackend("ref"));
const cov = gradCoverage("movement");
const s = (shape: readonly number[]): string => `[${shape.join(",")}]`;
/** 0, 1, 2, ... as a tensor: every element distinct, so data movement is visible */
const seq = (shape: readonly number[], dtype: DType = "float64"): Tensor =>
  tensor(
    Array.from({ length: numel(shape) }, (_, i) => i + 1),
    shape,
    dtype,
  );

/** A movement primitive on `backend`, bit for bit as on ref with float64 inputs (data movement rounds nothing). */
function moved(backend: BackendChoice, f: (...xs: Tensor[]) => Tensor, ins: Tensor[]): Tensor {
  return conform(backend, f, ins, { bits: true })[0]!;
}

describe("reshape", () => {
  const CASES: readonly [readonly number[], readonly number[], readonly number[]][] = [
    [
      [2, 3],
      [3, 2],
      [3, 2],
    ],
    [[6], [-1, 2], [3, 2]],
    [[2, 3], [6], [6]],
    [[], [1], [1]],
    [[1], [], []],
    [
      [2, 1, 3],
      [3, -1],
      [3, 2],
    ],
    [
      [0, 3],
      [3, 0],
      [3, 0],
    ],
    [
      [0, 3],
      [-1, 3],
      [0, 3],
    ],
  ];
  for (const [from, to, want] of CASES) {
    it.each(testBackends())(`reshape: ${s(from)} -> ${s(to)} gives ${s(want)} with the data unchanged, on %s as ref`, (backend) => {
      const x = seq(from, "int32");
      const y = moved(backend, (a) => bind1(Prim.Reshape, [a], { shape: to }), [x]);
      expect(y.shape).toEqual(want);
      expect(y.toArray()).toEqual(x.toArray());
    });
  }
  it("reshape: rejects a size change [2,3] -> [4]", () =>
    expectPrimError(() => bind1(Prim.Reshape, [seq([2, 3])], { shape: [4] }), "reshape", /cannot reshape/));
  it("reshape: rejects two -1", () =>
    expectPrimError(() => bind1(Prim.Reshape, [seq([2, 3])], { shape: [-1, -1] }), "reshape", /more than one -1/));
  it("reshape: rejects a -1 beside a 0, as NumPy ([0,3] -> [-1,0] or [2,0,-1]: any size would fit)", () => {
    for (const shape of [
      [-1, 0],
      [2, 0, -1],
    ])
      expectPrimError(() => bind1(Prim.Reshape, [seq([0, 3])], { shape }), "reshape", /cannot infer the -1 .*another size is 0/);
  });
  it("reshape: rejects a non-integer inferred dim [5] -> [-1, 2]", () =>
    expectPrimError(() => bind1(Prim.Reshape, [seq([5])], { shape: [-1, 2] }), "reshape"));
});

/** out[i] = x[j] with j[perm[d]] = i[d] */
function naiveTranspose(x: Tensor, perm: readonly number[]): number[] {
  const outShape = perm.map((p) => x.shape[p]!);
  return build(outShape, (i) => {
    const j = new Array<number>(perm.length);
    perm.forEach((p, d) => (j[p] = i[d]!));
    return x.data[ravel(j, x.shape)]!;
  });
}

describe("transpose", () => {
  const CASES: readonly [readonly number[], readonly number[]][] = [
    [
      [2, 3],
      [1, 0],
    ],
    [
      [2, 3, 4],
      [2, 0, 1],
    ],
    [
      [2, 3, 4],
      [0, 2, 1],
    ],
    [
      [2, 1, 3, 2],
      [3, 1, 0, 2],
    ],
    [
      [0, 3],
      [1, 0],
    ],
    [[1], [0]],
    [[], []],
    [
      [3, 5],
      [0, 1],
    ],
  ];
  for (const [shape, perm] of CASES) {
    it.each(testBackends())(`transpose: ${s(shape)} by perm ${s(perm)} on %s`, (backend) => {
      const x = seq(shape, "float32");
      const y = moved(backend, (a) => bind1(Prim.Transpose, [a], { perm }), [x]);
      expect(y.shape).toEqual(perm.map((p) => shape[p]));
      assertExact(y, naiveTranspose(x, perm));
    });
  }
  it("transpose: rejects a repeated axis [0,0]", () =>
    expectPrimError(() => bind1(Prim.Transpose, [seq([2, 3])], { perm: [0, 0] }), "transpose", /not a permutation/));
  it("transpose: rejects a perm of the wrong rank", () =>
    expectPrimError(() => bind1(Prim.Transpose, [seq([2, 3])], { perm: [0, 1, 2] }), "transpose"));
  it("transpose: rejects a negative axis", () =>
    expectPrimError(() => bind1(Prim.Transpose, [seq([2, 3])], { perm: [-1, 0] }), "transpose"));
});

/** out[i] = x[i with broadcast dims set to 0] */
function naiveBroadcast(x: Tensor, shape: readonly number[]): number[] {
  return build(
    shape,
    (i) =>
      x.data[
        ravel(
          i.map((v, d) => (x.shape[d] === 1 ? 0 : v)),
          x.shape,
        )
      ]!,
  );
}

describe("broadcast_to", () => {
  const CASES: readonly [readonly number[], readonly number[]][] = [
    [
      [1, 3],
      [2, 3],
    ],
    [
      [2, 1, 1],
      [2, 3, 4],
    ],
    [
      [1, 1],
      [1, 1],
    ],
    [[1], [5]],
    [
      [1, 2],
      [0, 2],
    ],
    [[], []],
    [
      [3, 1, 2],
      [3, 4, 2],
    ],
  ];
  for (const [from, to] of CASES) {
    it.each(testBackends())(`broadcast_to: ${s(from)} -> ${s(to)} on %s`, (backend) => {
      const x = seq(from, "float32");
      const y = moved(backend, (a) => bind1(Prim.BroadcastTo, [a], { shape: to }), [x]);
      expect(y.shape).toEqual(to);
      assertExact(y, naiveBroadcast(x, to));
    });
  }
  it("broadcast_to: rejects a rank change [3] -> [2,3] at the primitive", () =>
    expectPrimError(() => bind1(Prim.BroadcastTo, [seq([3])], { shape: [2, 3] }), "broadcast_to", /cannot broadcast/));
  it("broadcast_to: rejects a non-1 dim that differs [2] -> [3]", () =>
    expectPrimError(() => bind1(Prim.BroadcastTo, [seq([2])], { shape: [3] }), "broadcast_to"));
  it("broadcast_to (op): adds leading axes numpy-style [3] -> [2,3]; rejects [2,3] -> [3]", () => {
    expect(broadcastTo(seq([3]), [2, 3]).toArray()).toEqual([1, 2, 3, 1, 2, 3]);
    expectPrimError(() => broadcastTo(seq([2, 3]), [3]), "broadcast_to");
  });
});

function naiveSlice(x: Tensor, starts: readonly number[], ends: readonly number[]): number[] {
  return build(
    ends.map((e, d) => e - starts[d]!),
    (i) =>
      x.data[
        ravel(
          i.map((v, d) => v + starts[d]!),
          x.shape,
        )
      ]!,
  );
}

describe("slice", () => {
  const CASES: readonly [readonly number[], readonly number[], readonly number[]][] = [
    [[5], [1], [4]],
    [
      [3, 4],
      [1, 0],
      [3, 2],
    ],
    [
      [3, 4],
      [0, 0],
      [3, 4],
    ],
    [
      [3, 4],
      [2, 2],
      [2, 2],
    ],
    [
      [2, 3, 5],
      [1, 1, 2],
      [2, 3, 5],
    ],
    [
      [0, 3],
      [0, 1],
      [0, 3],
    ],
    [[1], [0], [1]],
  ];
  for (const [shape, starts, ends] of CASES) {
    it.each(testBackends())(`slice: ${s(shape)} from ${s(starts)} to ${s(ends)} on %s`, (backend) => {
      const x = seq(shape, "float32");
      const y = moved(backend, (a) => bind1(Prim.Slice, [a], { starts, ends }), [x]);
      expect(y.shape).toEqual(ends.map((e, d) => e - starts[d]!));
      assertExact(y, naiveSlice(x, starts, ends));
    });
  }
  it("slice: rejects a negative start", () =>
    expectPrimError(() => bind1(Prim.Slice, [seq([4])], { starts: [-1], ends: [2] }), "slice", /bad range/));
  it("slice: rejects an end past the dim", () =>
    expectPrimError(() => bind1(Prim.Slice, [seq([4])], { starts: [0], ends: [5] }), "slice", /bad range/));
  it("slice: rejects start > end", () =>
    expectPrimError(() => bind1(Prim.Slice, [seq([4])], { starts: [3], ends: [2] }), "slice", /bad range/));
  it("slice: rejects starts of the wrong rank", () =>
    expectPrimError(() => bind1(Prim.Slice, [seq([4, 2])], { starts: [0], ends: [1] }), "slice", /rank/));
});

function naivePad(x: Tensor, lo: readonly number[], hi: readonly number[]): number[] {
  const shape = x.shape.map((d, i) => d + lo[i]! + hi[i]!);
  return build(shape, (i) => {
    const j = i.map((v, d) => v - lo[d]!);
    return j.every((v, d) => v >= 0 && v < x.shape[d]!) ? x.data[ravel(j, x.shape)]! : 0;
  });
}

describe("pad", () => {
  const CASES: readonly [readonly number[], readonly number[], readonly number[]][] = [
    [[3], [1], [2]],
    [
      [2, 3],
      [0, 1],
      [1, 0],
    ],
    [
      [2, 3],
      [0, 0],
      [0, 0],
    ],
    [
      [2, 2, 2],
      [1, 0, 2],
      [0, 1, 1],
    ],
    [
      [0, 2],
      [1, 0],
      [1, 1],
    ],
    [[1], [0], [3]],
    [[], [], []],
  ];
  for (const [shape, lo, hi] of CASES) {
    it.each(testBackends())(`pad: ${s(shape)} with lo ${s(lo)} hi ${s(hi)} (zeros) on %s`, (backend) => {
      const x = seq(shape, "float32");
      const y = moved(backend, (a) => bind1(Prim.Pad, [a], { lo, hi }), [x]);
      expect(y.shape).toEqual(shape.map((d, i) => d + lo[i]! + hi[i]!));
      assertExact(y, naivePad(x, lo, hi));
    });
  }
  it("pad: rejects lo/hi of the wrong rank", () =>
    expectPrimError(() => bind1(Prim.Pad, [seq([2, 2])], { lo: [1], hi: [1] }), "pad", /rank/));

  // lax.pad crops on negative padding; moekit's pad is zero padding only and refuses it
  it("pad: negative padding is a [pad] error", () => {
    expect(() => bind1(Prim.Pad, [seq([2, 3])], { lo: [0, -1], hi: [0, 0] })).toThrow(/^\[pad\] padding must be non-negative/);
    expect(() => bind1(Prim.Pad, [seq([2, 3])], { lo: [0, 0], hi: [0, -1] })).toThrow(/^\[pad\]/);
  });
});

describe("concat", () => {
  const CASES: readonly [readonly (readonly number[])[], number][] = [
    [[[2], [3]], 0],
    [
      [
        [2, 3],
        [1, 3],
      ],
      0,
    ],
    [
      [
        [2, 3],
        [2, 1],
        [2, 2],
      ],
      1,
    ],
    [
      [
        [2, 3],
        [2, 1],
      ],
      -1,
    ],
    [
      [
        [2, 0],
        [2, 3],
      ],
      1,
    ],
    [
      [
        [0, 2],
        [0, 2],
      ],
      0,
    ],
    [
      [
        [1, 2, 2],
        [1, 3, 2],
      ],
      1,
    ],
    [[[4]], 0],
  ];
  for (const [shapes, axis] of CASES) {
    it.each(testBackends())(`concat: ${shapes.map(s).join(" + ")} along axis ${axis} on %s`, (backend) => {
      let base = 0;
      const xs = shapes.map((sh) => {
        const t = tensor(
          Array.from({ length: numel(sh) }, (_, i) => base + i),
          sh,
          "float32",
        );
        base += 100;
        return t;
      });
      const y = moved(backend, (...a) => bind1(Prim.Concat, a, { axis }), xs);
      const ax = axis < 0 ? axis + shapes[0]!.length : axis;
      const outShape = [...shapes[0]!];
      outShape[ax] = shapes.reduce((a, sh) => a + sh[ax]!, 0);
      expect(y.shape).toEqual(outShape);
      // naive: locate the input owning each output index along the axis
      const want = build(outShape, (i) => {
        let k = i[ax]!;
        for (const x of xs) {
          if (k < x.shape[ax]!) {
            const j = [...i];
            j[ax] = k;
            return x.data[ravel(j, x.shape)]!;
          }
          k -= x.shape[ax]!;
        }
        throw new Error("unreachable");
      });
      assertExact(y, want);
    });
  }
  it("concat: rejects no inputs", () => expectPrimError(() => bind1(Prim.Concat, [], { axis: 0 }), "concat", /at least one/));
  it("concat: rejects mixed dtypes", () =>
    expectPrimError(() => bind1(Prim.Concat, [seq([2]), seq([2], "float32")], { axis: 0 }), "concat", /dtypes/));
  it("concat: rejects shapes that differ off the axis", () =>
    expectPrimError(() => bind1(Prim.Concat, [seq([2, 3]), seq([2, 2])], { axis: 0 }), "concat", /differ off axis/));
  it("concat: rejects ranks that differ", () => expectPrimError(() => bind1(Prim.Concat, [seq([2, 3]), seq([3])], { axis: 0 }), "concat"));
  it("concat: rejects an axis out of range", () =>
    expectPrimError(() => bind1(Prim.Concat, [seq([2]), seq([2])], { axis: 1 }), "concat", /out of range/));
});

describe("iota", () => {
  const CASES: readonly [readonly number[], number, DType][] = [
    [[5], 0, "int32"],
    [[2, 3], 1, "int32"],
    [[2, 3], 0, "int32"],
    [[2, 3], -1, "float32"],
    [[0], 0, "int32"],
    [[2, 0, 3], 2, "float64"],
  ];
  for (const [shape, axis, dtype] of CASES) {
    it.each(testBackends())(`iota: ${dtype}${s(shape)} along axis ${axis} on %s`, (backend) => {
      const y = moved(backend, () => bind1(Prim.Iota, [], { shape, axis, dtype }), []);
      expect(y.dtype).toBe(dtype);
      const ax = axis < 0 ? axis + shape.length : axis;
      assertExact(
        y,
        build(shape, (i) => i[ax]!),
      );
    });
  }
  it("iota: rejects an axis out of range", () =>
    expectPrimError(() => bind1(Prim.Iota, [], { shape: [3], axis: 1, dtype: "int32" }), "iota", /out of range/));
  it("iota: rejects inputs", () =>
    expectPrimError(() => bind1(Prim.Iota, [seq([1])], { shape: [3], axis: 0, dtype: "int32" }), "iota", /expects 0 inputs/));
  it("iota: has no VJP rule", () => expect(vjpRules[Prim.Iota]).toBeNull());
});

describe("movement ops", () => {
  it("stack / expandDims / squeeze / moveAxis agree with index arithmetic", () => {
    const a = seq([2, 3]);
    const b = tensor(
      a.toArray().map((v) => -v),
      [2, 3],
      "float64",
    );
    const st = stack([a, b], 1);
    expect(st.shape).toEqual([2, 2, 3]);
    expect(st.toNested()).toEqual([
      [
        [1, 2, 3],
        [-1, -2, -3],
      ],
      [
        [4, 5, 6],
        [-4, -5, -6],
      ],
    ]);
    expect(expandDims(a, -1).shape).toEqual([2, 3, 1]);
    expect(squeeze(expandDims(a, 0), 0).shape).toEqual([2, 3]);
    expectPrimError(() => squeeze(a, 0), "squeeze", /is not 1/);
    const m = moveAxis(seq([2, 3, 4]), 2, 0);
    expect(m.shape).toEqual([4, 2, 3]);
    assertExact(m, naiveTranspose(seq([2, 3, 4]), [2, 0, 1]));
  });
  it("ops: identity reshape/transpose/slice/pad return the input itself (no primitive bound)", () => {
    const a = seq([2, 3]);
    expect(reshape(a, [2, 3])).toBe(a);
    expect(transpose(a, [0, 1])).toBe(a);
    expect(slice(a, [0, 0])).toBe(a);
    expect(pad(a, [0, 0], [0, 0])).toBe(a);
    expect(concatenate([a])).toBe(a);
  });
});

describe("movement gradients and adjoints", () => {
  const rng = new Rng(77);
  const grad = (p: Prim, f: (x: Tensor) => Tensor, x: Tensor): void => {
    const w = new Rng(78).normal(f(x).shape);
    assertGradcheck((a) => project(f(a), w), [x]);
    cov.mark(p);
  };

  it("reshape: gradient matches central differences", () =>
    grad(Prim.Reshape, (x) => bind1(Prim.Reshape, [x], { shape: [3, 4] }), rng.normal([2, 6])));
  it("transpose: gradient matches central differences", () =>
    grad(Prim.Transpose, (x) => bind1(Prim.Transpose, [x], { perm: [2, 0, 1] }), rng.normal([2, 3, 2])));
  it("broadcast_to: gradient matches central differences", () =>
    grad(Prim.BroadcastTo, (x) => bind1(Prim.BroadcastTo, [x], { shape: [2, 3, 4] }), rng.normal([2, 1, 1])));
  it("slice: gradient matches central differences", () =>
    grad(Prim.Slice, (x) => bind1(Prim.Slice, [x], { starts: [1, 0], ends: [3, 2] }), rng.normal([3, 4])));
  it("pad: gradient matches central differences", () =>
    grad(Prim.Pad, (x) => bind1(Prim.Pad, [x], { lo: [1, 0], hi: [0, 2] }), rng.normal([2, 3])));
  it("concat: gradient in every input matches central differences", () => {
    const w = rng.normal([2, 6]);
    assertGradcheck(
      (a, b, c) => project(bind1(Prim.Concat, [a, b, c], { axis: 1 }), w),
      [rng.normal([2, 1]), rng.normal([2, 3]), rng.normal([2, 2])],
    );
    cov.mark(Prim.Concat);
  });

  it("transpose: adjoint identity; Aᵀ is the inverse permutation", () => {
    const x = rng.normal([2, 3, 4]);
    const r = assertAdjoint((a) => bind1(Prim.Transpose, [a], { perm: [1, 2, 0] }), [x]);
    const y = new Rng(7).normal([3, 4, 2]);
    assertExact(r.transposed[0]!, naiveTranspose(y, [2, 0, 1]));
  });

  it("broadcast_to ⇄ sum: adjoint identity; Aᵀy sums y over the broadcast axes", () => {
    const x = rng.normal([2, 1, 3]);
    const r = assertAdjoint((a) => bind1(Prim.BroadcastTo, [a], { shape: [2, 4, 3] }), [x]);
    const y = new Rng(7).normal([2, 4, 3]);
    const want = build([2, 1, 3], (i) => {
      let acc = 0;
      for (let k = 0; k < 4; k++) acc += y.data[ravel([i[0]!, k, i[2]!], [2, 4, 3])]!;
      return acc;
    });
    assertAllClose(r.transposed[0]!, want, { atol: 1e-14, rtol: 1e-14 });
    // and sum's transpose is the broadcast
    assertAdjoint((a) => sum(a, 1, true), [rng.normal([2, 4, 3])]);
  });

  it("slice ⇄ pad: adjoint identities; Aᵀ of slice is zero padding and Aᵀ of pad is slicing", () => {
    const x = rng.normal([4, 5]);
    const rs = assertAdjoint((a) => bind1(Prim.Slice, [a], { starts: [1, 2], ends: [3, 5] }), [x]);
    const y = new Rng(7).normal([2, 3]);
    assertExact(rs.transposed[0]!, naivePad(y, [1, 2], [1, 0]));
    const rp = assertAdjoint((a) => bind1(Prim.Pad, [a], { lo: [1, 2], hi: [1, 0] }), [y]);
    assertExact(rp.transposed[0]!, naiveSlice(new Rng(7).normal([4, 5]), [1, 2], [3, 5]));
  });

  it("concat: adjoint identity jointly in all inputs (axis 0 and axis 1)", () => {
    assertAdjoint((a, b) => bind1(Prim.Concat, [a, b], { axis: 0 }), [rng.normal([1, 3]), rng.normal([2, 3])]);
    assertAdjoint((a, b, c) => bind1(Prim.Concat, [a, b, c], { axis: 1 }), [rng.normal([2, 2]), rng.normal([2, 0]), rng.normal([2, 3])]);
  });

  it("reshape: adjoint identity", () => assertAdjoint((a) => bind1(Prim.Reshape, [a], { shape: [6, 2] }), [rng.normal([3, 4])]));

  it("movement ops compose: gradient of stack + moveAxis + slice", () => {
    const w = rng.normal([2, 2, 2, 2]);
    assertGradcheck(
      (a, b) => project(moveAxis(slice(stack([a, mul(b, b)], 0), [0, 0, 1]), 3, 0), w),
      [rng.normal([2, 3, 2]), rng.normal([2, 3, 2])],
    );
  });

  // The Concat VJP indexes t.shape[axis] with the raw (negative) axis, so every input receives the
  // whole output cotangent: grads of [2,1] and [2,2] inputs come back with shape [2,3].
  it("concat: gradient with a negative axis (concatenate([a[2,1], b[2,2]], -1)) has the input shapes", () => {
    const a = rng.normal([2, 1]);
    const b = rng.normal([2, 2]);
    const { grads } = valueAndGrad((x: Tensor, y: Tensor) => sum(mul(concatenate([x, y], -1), 2)))(a, b);
    expect(grads[0].shape).toEqual([2, 1]);
    expect(grads[1].shape).toEqual([2, 2]);
  });

  it("every differentiable movement primitive was gradient-checked", () => cov.verify());
});
