import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Tensor, tensor } from "../../src/core/tensor.js";
import { useBackend, type BackendChoice } from "../../src/backends/select.js";
import { bind, bind1 } from "../../src/autodiff/bind.js";
import { Prim } from "../../src/prims/prims.js";
import { vjpRules } from "../../src/autodiff/vjp-rules.js";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import {
  argsort,
  bincount,
  cumsum,
  invertPermutation,
  oneHot,
  repeat,
  scatterAdd,
  take,
  takeAlongAxis,
  topK,
} from "../../src/ops/indexing.js";
import { sum } from "../../src/ops/reduce.js";
import { assertAdjoint } from "../harness/adjoint.js";
import { assertGradcheck, project } from "../harness/gradcheck.js";
import { Rng } from "../harness/random.js";
import { assertAllClose, assertExact } from "../harness/tolerance.js";
import { expectPrimError, gradCoverage } from "../harness/families.js";
import { build, numel, range, ravel } from "../harness/naive.js";
import { testBackends } from "../harness/backends.js";
import { conform, conformGrad } from "../harness/conformance.js";

beforeAll(() => void useBackend("ref"));
const cov = gradCoverage("indexing");
const s = (shape: readonly number[]): string => `[${shape.join(",")}]`;
const i32 = (xs: number[], shape: readonly number[] = [xs.length]): Tensor => tensor(xs, shape, "int32");
const f64 = (xs: number[], shape: readonly number[] = [xs.length]): Tensor => tensor(xs, shape, "float64");
const inner = (t: Tensor): number => numel(t.shape.slice(1));

function naiveGather(x: Tensor, idx: number[]): number[] {
  const n = inner(x);
  return idx.flatMap((r) => Array.from(x.data.subarray(r * n, (r + 1) * n)));
}
function naiveScatterAdd(u: Tensor, idx: number[], numRows: number): number[] {
  const n = inner(u);
  const out = new Array<number>(numRows * n).fill(0);
  idx.forEach((r, i) => {
    for (let j = 0; j < n; j++) out[r * n + j] = out[r * n + j]! + u.data[i * n + j]!;
  });
  return out;
}
/** Selection by repeated scans: the largest value first, the lowest index among equals; NaN largest. */
function naiveTopK(row: number[], k: number): { values: number[]; indices: number[] } {
  const used = new Set<number>();
  const values: number[] = [];
  const idx: number[] = [];
  const better = (a: number, b: number): boolean => (Number.isNaN(a) ? !Number.isNaN(b) : !Number.isNaN(b) && a > b);
  for (let t = 0; t < k; t++) {
    let best = -1;
    for (let j = 0; j < row.length; j++) {
      if (used.has(j)) continue;
      if (best === -1 || better(row[j]!, row[best]!)) best = j;
    }
    used.add(best);
    idx.push(best);
    values.push(row[best]!);
  }
  return { values, indices: idx };
}
/** Stable ascending order by insertion sort. */
function naiveArgsort(row: number[]): number[] {
  const out: number[] = [];
  for (let j = 0; j < row.length; j++) {
    let p = out.length;
    while (p > 0 && row[out[p - 1]!]! > row[j]!) p--;
    out.splice(p, 0, j);
  }
  return out;
}
/** jnp.repeat(x, repeats, total_repeat_length) gather indices, by JAX's scatter/cumsum construction. */
function jnpRepeatIndices(repeats: number[], total: number | undefined): number[] {
  if (total === undefined) return repeats.flatMap((r, i) => new Array<number>(r).fill(i));
  const exclusive = [0, ...repeats.slice(0, -1)];
  const starts: number[] = [];
  exclusive.reduce((acc, v) => (starts.push(acc + v), acc + v), 0);
  const marks = new Array<number>(total).fill(0);
  for (const st of starts) if (st < total) marks[st]!++; // out-of-bounds scatter updates are dropped
  let c = 0;
  return marks.map((m) => (c += m) - 1);
}

describe("gather", () => {
  const CASES: readonly [readonly number[], number[]][] = [
    [
      [5, 3],
      [0, 4, 4, 2],
    ],
    [[4], [3, 0]],
    [[4], []],
    [[0, 2], []],
    [
      [3, 2, 2],
      [2, 0],
    ],
    [[1], [0, 0, 0]],
  ];
  for (const [shape, idx] of CASES) {
    for (const dtype of ["float64", "int32"] as const) {
      it(`gather: ${dtype}${s(shape)} rows [${idx.join(",")}]`, () => {
        const x = tensor(
          range(numel(shape)).map((v) => v * 3 - 7),
          shape,
          dtype,
        );
        const y = bind1(Prim.Gather, [x, i32(idx)], {});
        expect(y.shape).toEqual([idx.length, ...shape.slice(1)]);
        expect(y.dtype).toBe(dtype);
        assertExact(y, naiveGather(x, idx));
      });
    }
  }
  const x = f64([1, 2, 3, 4, 5, 6], [3, 2]);
  it("gather: rejects float indices", () => expectPrimError(() => bind1(Prim.Gather, [x, f64([0])], {}), "gather", /1-D int32/));
  it("gather: rejects 2-D indices", () => expectPrimError(() => bind1(Prim.Gather, [x, i32([0, 1], [1, 2])], {}), "gather", /1-D int32/));
  it("gather: rejects a rank-0 operand", () =>
    expectPrimError(() => bind1(Prim.Gather, [f64([1], []), i32([0])], {}), "gather", /rank >= 1/));
  it("gather: rejects index -1", () => expectPrimError(() => bind1(Prim.Gather, [x, i32([0, -1])], {}), "gather", /out of range/));
  it("gather: rejects index == rows", () => expectPrimError(() => bind1(Prim.Gather, [x, i32([3])], {}), "gather", /out of range/));
});

describe("scatter_add", () => {
  const CASES: readonly [readonly number[], number[], number][] = [
    [[4, 3], [0, 2, 0, 1], 3],
    [[4, 3], [0, 2, 0, 1], 6],
    [[3], [1, 1, 1], 2],
    [[0, 2], [], 3],
    [[0], [], 0],
    [[2, 2, 2], [1, 0], 2],
  ];
  for (const [shape, idx, numRows] of CASES) {
    for (const dtype of ["float64", "float32", "int32"] as const) {
      it(`scatter_add: ${dtype}${s(shape)} into ${numRows} rows at [${idx.join(",")}] (duplicates add)`, () => {
        const u = tensor(
          range(numel(shape)).map((v) => v - 4),
          shape,
          dtype,
        );
        const y = bind1(Prim.ScatterAdd, [u, i32(idx)], { numRows });
        expect(y.shape).toEqual([numRows, ...shape.slice(1)]);
        assertExact(y, naiveScatterAdd(u, idx, numRows));
      });
    }
  }
  it("scatter_add: float32 accumulates in float64 before rounding", () => {
    const y = bind1(Prim.ScatterAdd, [tensor([1e8, 1, 1, 1, 1, -1e8], [6], "float32"), i32([0, 0, 0, 0, 0, 0])], { numRows: 1 });
    expect(y.item()).toBe(4);
  });
  const u = f64([1, 2, 3, 4], [2, 2]);
  it("scatter_add: rejects updates/index count mismatch", () =>
    expectPrimError(() => bind1(Prim.ScatterAdd, [u, i32([0])], { numRows: 2 }), "scatter_add", /2 rows vs 1 indices/));
  it("scatter_add: rejects float indices", () =>
    expectPrimError(() => bind1(Prim.ScatterAdd, [u, f64([0, 1])], { numRows: 2 }), "scatter_add", /int32/));
  it("scatter_add: rejects an index >= numRows", () =>
    expectPrimError(() => bind1(Prim.ScatterAdd, [u, i32([0, 2])], { numRows: 2 }), "scatter_add", /out of range/));
  it("scatter_add: a negative numRows is a [scatter_add] error", () =>
    expectPrimError(() => bind1(Prim.ScatterAdd, [u, i32([0, 0])], { numRows: -1 }), "scatter_add"));
});

/** top_k of x on `backend` against ref in float64 (indices exactly); on ref also against stable selection. */
function checkTopK(backend: BackendChoice, x: Tensor, k: number): void {
  const [v, i] = conform(backend, (a) => bind(Prim.TopK, [a!], { k }), [x]);
  const shape = x.shape;
  expect(v!.shape).toEqual([...shape.slice(0, -1), k]);
  expect(v!.dtype).toBe(x.dtype);
  expect(i!.dtype).toBe("int32");
  if (backend !== "ref") return;
  const n = shape[shape.length - 1]!;
  const r = n === 0 ? 0 : numel(shape) / n;
  const want = range(r).map((row) => naiveTopK(Array.from(x.data.subarray(row * n, (row + 1) * n)), k));
  assertExact(
    i!,
    want.flatMap((w) => w.indices),
  );
  assertExact(
    v!,
    want.flatMap((w) => w.values),
  );
}

describe.each(testBackends())("top_k on %s", (backend) => {
  afterAll(() => void useBackend("ref"));
  const CASES: readonly [readonly number[], number][] = [
    [[6], 3],
    [[6], 6],
    [[6], 0],
    [[4, 7], 3],
    [[2, 3, 5], 2],
    [[3, 1], 1],
    [[0, 4], 2],
    [[3, 0], 0],
    [[1, 2], 0],
    [[16, 12], 5],
  ];
  for (const [shape, k] of CASES) {
    for (const dtype of ["float64", "float32", "bfloat16", "int32"] as const) {
      it(`top_k: ${dtype}${s(shape)} k=${k} with many ties matches ref in float64${backend === "ref" ? " and stable selection" : ""}`, () => {
        checkTopK(backend, tensor(new Rng(51).randint(shape, -2, 3).data, shape, dtype), k);
      });
    }
  }
  const SPECIAL: readonly [string, Tensor, number][] = [
    ["NaN first, -Infinity last", tensor([0.5, NaN, -Infinity, 2, NaN], [5], "float32"), 4],
    ["ties go to the lower index", tensor([1, 3, 3, 2], [4], "float32"), 2],
    ["k = n with repeats", tensor([3, 1, 2, 1, 3], [5], "float32"), 5],
    ["random float32 [37, 64] k=8", new Rng(55).tensor([37, 64]), 8],
    ["random bfloat16 [37, 64] k=8 (ties from the rounding)", new Rng(56).tensor([37, 64], "bfloat16"), 8],
    [
      "-Infinity and signed zeros past the first 16 (ties by index)",
      tensor([...Array<number>(17).fill(-Infinity), -0, 0, -0, -Infinity, 0], [22], "float32"),
      22,
    ],
    ["[9, 37] k=37 with ties (a partial vector of 5)", tensor(new Rng(57).randint([9, 37], -2, 3).data, [9, 37], "float32"), 37],
    ["[3, 512] k=11 (the widest vector path)", new Rng(58).tensor([3, 512]), 11],
    ["[2, 600] k=9 (the scalar path)", new Rng(59).tensor([2, 600]), 9],
  ];
  for (const [what, x, k] of SPECIAL) it(`top_k: ${what}`, () => checkTopK(backend, x, k));
});

describe("top_k", () => {
  it("top_k: [1,3,3,2] k=2 gives values [3,3], indices [1,2] (ties to the lower index)", () => {
    const [v, i] = bind(Prim.TopK, [f64([1, 3, 3, 2])], { k: 2 });
    expect(v!.toArray()).toEqual([3, 3]);
    expect(i!.toArray()).toEqual([1, 2]);
    expect(i!.dtype).toBe("int32");
  });

  it("top_k: NaN ranks first, -Infinity last", () => {
    const [v, i] = bind(Prim.TopK, [f64([-Infinity, 2, NaN, 5, NaN])], { k: 5 });
    assertExact(v!, [NaN, NaN, 5, 2, -Infinity]);
    expect(i!.toArray()).toEqual([2, 4, 3, 1, 0]);
  });

  const x = f64([1, 2, 3], [3]);
  it("top_k: rejects k > n", () => expectPrimError(() => bind(Prim.TopK, [x], { k: 4 }), "top_k", /k=4 invalid/));
  it("top_k: rejects negative k", () => expectPrimError(() => bind(Prim.TopK, [x], { k: -1 }), "top_k"));
  it("top_k: rejects non-integer k", () => expectPrimError(() => bind(Prim.TopK, [x], { k: 1.5 }), "top_k"));
  it("top_k: rejects a rank-0 input", () => expectPrimError(() => bind(Prim.TopK, [f64([1], [])], { k: 1 }), "top_k"));
});

/** argsort of x on `backend` against ref in float64 (exactly); on ref also against a stable insertion sort. */
function checkArgsort(backend: BackendChoice, x: Tensor): void {
  const [y] = conform(backend, (a) => argsort(a!), [x]);
  expect(y!.dtype).toBe("int32");
  expect(y!.shape).toEqual(x.shape);
  if (backend !== "ref") return;
  const n = x.shape[x.ndim - 1]!;
  const r = n === 0 ? 0 : x.size / n;
  assertExact(
    y!,
    range(r).flatMap((row) => naiveArgsort(Array.from(x.data.subarray(row * n, (row + 1) * n)))),
  );
}

describe.each(testBackends())("argsort on %s", (backend) => {
  afterAll(() => void useBackend("ref"));
  const CASES: readonly (readonly number[])[] = [[9], [3, 8], [2, 2, 5], [1], [0], [3, 0], [0, 4], [7]];
  for (const shape of CASES) {
    for (const dtype of ["float64", "int32"] as const) {
      it(`argsort: ${dtype}${s(shape)} with ties matches ref in float64${backend === "ref" ? " and a stable insertion sort per row" : ""}`, () => {
        checkArgsort(backend, tensor(new Rng(52).randint(shape, -3, 4).data, shape, dtype));
      });
    }
  }
  const SPECIAL: readonly [string, Tensor][] = [
    ["int32 keys over a wide range (comparison sort)", i32([1e9, -1e9, 7, 1e9, -5, 7])],
    ["int32 extreme keys", i32([2147483647, -2147483648, 0, -2147483648, 2147483647])],
    ["the expert ids of 8192 routed rows", new Rng(56).randint([8192], 0, 64)],
  ];
  for (const [what, x] of SPECIAL) it(`argsort: ${what}`, () => checkArgsort(backend, x));
});

describe("argsort", () => {
  it("argsort: [2,1,2,1,0] is stable: [4,1,3,0,2]", () => {
    expect(argsort(f64([2, 1, 2, 1, 0])).toArray()).toEqual([4, 1, 3, 0, 2]);
  });
  it("argsort: -0 and 0 are equal keys (stable order kept)", () => {
    expect(argsort(f64([0, -0, 0, -1])).toArray()).toEqual([3, 0, 1, 2]);
  });
  it("argsort: NaN sorts last, as jnp.argsort ([3,NaN,1,2,NaN,0] -> [5,2,3,0,1,4])", () => {
    expect(argsort(f64([3, NaN, 1, 2, NaN, 0])).toArray()).toEqual([5, 2, 3, 0, 1, 4]);
  });
  it("argsort: rejects a rank-0 input", () => expectPrimError(() => bind1(Prim.Argsort, [f64([1], [])], {}), "argsort", /rank >= 1/));
  it("invertPermutation: composes to the identity", () => {
    const p = new Rng(53).permutation(11);
    const inv = invertPermutation(i32(p)).toArray();
    expect(p.map((v) => inv[v])).toEqual(range(11));
  });
});

describe("bincount", () => {
  const CASES: readonly [number[], number, number[]][] = [
    [[0, 1, 1, 3, -1, 4, 7], 4, [1, 2, 0, 1]],
    [[], 3, [0, 0, 0]],
    [[2, 2], 0, []],
    [[0, 0, 0], 1, [3]],
    [[-5, 10, 2147483647, -2147483648], 2, [0, 0]],
  ];
  for (const [xs, length, want] of CASES) {
    it(`bincount: [${xs.join(",")}] length ${length} -> [${want.join(",")}] (out-of-range ignored)`, () => {
      const y = bind1(Prim.Bincount, [i32(xs)], { length });
      expect(y.dtype).toBe("int32");
      expect(y.toArray()).toEqual(want);
    });
  }
  it("bincount (op): flattens a 2-D input", () => expect(bincount(i32([0, 1, 1, 1], [2, 2]), 2).toArray()).toEqual([1, 3]));
  it("bincount: rejects a float input", () => expectPrimError(() => bind1(Prim.Bincount, [f64([1])], { length: 2 }), "bincount", /int32/));
  it("bincount: rejects a 2-D input at the primitive", () =>
    expectPrimError(() => bind1(Prim.Bincount, [i32([1, 0], [1, 2])], { length: 2 }), "bincount", /1-D/));
  it("bincount: a negative length is a [bincount] error", () =>
    expectPrimError(() => bind1(Prim.Bincount, [i32([1])], { length: -1 }), "bincount"));
  it("argsort, bincount: no VJP rule", () => {
    expect(vjpRules[Prim.Argsort]).toBeNull();
    expect(vjpRules[Prim.Bincount]).toBeNull();
  });
});

function naiveCumsum(x: Tensor, axis: number, reverse: boolean): number[] {
  const ax = axis < 0 ? axis + x.ndim : axis;
  const n = x.shape[ax]!;
  return build(x.shape, (i) => {
    let acc = 0;
    const lo = reverse ? i[ax]! : 0;
    const hi = reverse ? n - 1 : i[ax]!;
    for (let t = lo; t <= hi; t++) {
      const j = [...i];
      j[ax] = t;
      acc += x.data[ravel(j, x.shape)]!;
    }
    return acc;
  });
}

describe("cumsum", () => {
  const CASES: readonly [readonly number[], number][] = [
    [[6], 0],
    [[3, 4], 0],
    [[3, 4], 1],
    [[2, 3, 4], 1],
    [[2, 3, 4], -1],
    [[0], 0],
    [[3, 0], 1],
    [[1], 0],
  ];
  for (const [shape, axis] of CASES) {
    for (const reverse of [false, true]) {
      for (const dtype of ["int32", "float64"] as const) {
        it(`cumsum: ${dtype}${s(shape)} axis ${axis}${reverse ? " reverse" : ""}`, () => {
          const x = tensor(new Rng(54).randint(shape, -9, 10).data, shape, dtype);
          const y = bind1(Prim.Cumsum, [x], { axis, reverse });
          expect(y.dtype).toBe(dtype);
          assertExact(y, naiveCumsum(x, axis, reverse));
        });
      }
    }
  }
  it("cumsum (op): defaults to the last axis", () => expect(cumsum(i32([1, 2, 3, 4], [2, 2])).toArray()).toEqual([1, 3, 3, 7]));
  it("cumsum: rejects an axis out of range", () =>
    expectPrimError(() => bind1(Prim.Cumsum, [f64([1, 2])], { axis: 1, reverse: false }), "cumsum", /out of range/));
});

describe("indexing ops", () => {
  it("take: axis 1 with 2-D indices places the index dims at the axis", () => {
    const x = tensor(range(24), [2, 3, 4], "float64");
    const idx = i32([2, 0, 1, 1], [2, 2]);
    const y = take(x, idx, 1);
    expect(y.shape).toEqual([2, 2, 2, 4]);
    assertExact(
      y,
      build([2, 2, 2, 4], ([a, p, q, c]) => x.data[ravel([a!, idx.data[p! * 2 + q!]!, c!], x.shape)]!),
    );
    expectPrimError(() => take(x, f64([0]), 0), "take", /int32/);
  });

  it("takeAlongAxis: out[..., j] = x[..., idx[..., j]]", () => {
    const x = tensor(range(12), [2, 2, 3], "float64");
    const idx = i32([2, 2, 0, 1, 0, 0, 1, 2], [2, 2, 2]);
    assertExact(
      takeAlongAxis(x, idx),
      build([2, 2, 2], ([a, b, j]) => x.data[ravel([a!, b!, idx.data[ravel([a!, b!, j!], [2, 2, 2])]!], x.shape)]!),
    );
    expectPrimError(() => takeAlongAxis(x, i32([0, 1], [2, 1])), "take_along_axis");
  });

  it("oneHot: out-of-range and negative ids give all-zero rows", () => {
    expect(oneHot(i32([0, 2, -1, 3]), 3, "int32").toNested()).toEqual([
      [1, 0, 0],
      [0, 0, 1],
      [0, 0, 0],
      [0, 0, 0],
    ]);
    expect(oneHot(i32([1, 0], [1, 2]), 2).shape).toEqual([1, 2, 2]);
  });

  const REPEATS: readonly [number[], number | undefined][] = [
    [[1, 2, 0, 5], undefined],
    [[1, 2, 0, 5], 8],
    [[1, 2, 0, 5], 11],
    [[1, 2, 0, 5], 4],
    [[1, 0, 0], 3],
    [[2, 0], 3],
    [[0, 0, 1], 2],
    [[3, 1], 0],
  ];
  for (const [reps, total] of REPEATS) {
    it(`repeat: repeats [${reps.join(",")}]${total === undefined ? "" : ` totalRepeatLength ${total}`} matches jnp.repeat`, () => {
      const x = tensor(
        range(reps.length * 2).map((v) => v + 1),
        [reps.length, 2],
        "float64",
      );
      const y = repeat(x, i32(reps), total);
      const want = jnpRepeatIndices(reps, total);
      expect(y.shape).toEqual([want.length, 2]);
      assertExact(y, naiveGather(x, want));
    });
  }
  it("repeat: a scalar count repeats every row", () => expect(repeat(i32([1, 2]), 3).toArray()).toEqual([1, 1, 1, 2, 2, 2]));
  it("repeat: pads past sum(repeats) with the last row (not the last repeated row)", () =>
    expect(repeat(i32([7, 8, 9]), i32([2, 0, 0]), 4).toArray()).toEqual([7, 7, 9, 9]));
  it("repeat: rejects a count per row mismatch and negative counts", () => {
    expectPrimError(() => repeat(i32([1, 2]), i32([1])), "repeat");
    expectPrimError(() => repeat(i32([1, 2]), i32([1, -1])), "repeat");
  });
});

describe.each(testBackends())("top_k gradients on %s against ref in float64", (backend) => {
  it("top_k: value and gradients of <top_k(x, 3) values, w> (distinct float32 inputs)", () => {
    const rng = new Rng(71);
    conformGrad(
      backend,
      (x, w) => project(bind(Prim.TopK, [x!], { k: 3 })[0]!, w!),
      [rng.distinct([6, 9], "float32"), rng.tensor([6, 3])],
      { k: [18, 1, 1] },
    );
  });
});

describe("indexing gradients and adjoints", () => {
  it("gather: gradient matches central differences (repeated rows accumulate)", () => {
    const rng = new Rng(61);
    const w = rng.normal([5, 2]);
    assertGradcheck((x, idx) => project(bind1(Prim.Gather, [x, idx], {}), w), [rng.normal([3, 2]), i32([2, 0, 2, 2, 1])]);
    cov.mark(Prim.Gather);
  });

  it("scatter_add: gradient matches central differences", () => {
    const rng = new Rng(62);
    const w = rng.normal([4, 2]);
    assertGradcheck((u, idx) => project(bind1(Prim.ScatterAdd, [u, idx], { numRows: 4 }), w), [rng.normal([5, 2]), i32([3, 0, 3, 1, 3])]);
    cov.mark(Prim.ScatterAdd);
  });

  it("top_k: gradient through the values matches central differences (distinct inputs)", () => {
    const rng = new Rng(63);
    const w = rng.normal([3, 2]);
    assertGradcheck((x) => project(bind(Prim.TopK, [x], { k: 2 })[0]!, w), [rng.distinct([3, 5])]);
    cov.mark(Prim.TopK);
  });

  it("top_k: gradient lands on the selected positions only (ties: the lower index)", () => {
    const { grads } = valueAndGrad((x: Tensor) => sum(topK(x, 2)[0]))(f64([1, 3, 3, 2]));
    expect(grads[0].toArray()).toEqual([0, 1, 1, 0]);
    const g1 = valueAndGrad((x: Tensor) => sum(topK(x, 1)[0]))(f64([1, 3, 3, 2])).grads[0];
    expect(g1.toArray()).toEqual([0, 1, 0, 0]);
  });

  it("cumsum: gradient matches central differences (forward and reverse, every axis)", () => {
    const rng = new Rng(64);
    for (const axis of [0, 1, -1]) {
      for (const reverse of [false, true]) {
        const w = rng.normal([3, 4]);
        assertGradcheck((x) => project(bind1(Prim.Cumsum, [x], { axis, reverse }), w), [rng.normal([3, 4])]);
      }
    }
    cov.mark(Prim.Cumsum);
  });

  it("gather ⇄ scatter_add: adjoint identity of gather; Aᵀy is the scatter-add of y", () => {
    const rng = new Rng(65);
    const idx = [1, 3, 1, 0, 1];
    const r = assertAdjoint((x) => bind1(Prim.Gather, [x, i32(idx)], {}), [rng.normal([4, 3])]);
    assertAllClose(r.transposed[0]!, naiveScatterAdd(new Rng(7).normal([5, 3]), idx, 4), { atol: 1e-15, rtol: 1e-15 });
  });

  it("scatter_add ⇄ gather: adjoint identity of scatter_add; Aᵀy is the gather of y", () => {
    const rng = new Rng(66);
    const idx = [2, 2, 0, 4];
    const r = assertAdjoint((u) => bind1(Prim.ScatterAdd, [u, i32(idx)], { numRows: 5 }), [rng.normal([4, 2])]);
    assertExact(r.transposed[0]!, naiveGather(new Rng(7).normal([5, 2]), idx));
  });

  it("take (axis 1) and takeAlongAxis: adjoint identities", () => {
    const rng = new Rng(67);
    assertAdjoint((x) => take(x, i32([2, 0, 2], [3]), 1), [rng.normal([2, 3, 2])]);
    assertAdjoint((x) => takeAlongAxis(x, i32([1, 1, 0, 2, 0, 0], [2, 3])), [rng.normal([2, 3])]);
  });

  it("scatterAdd (op): adjoint of take axis 0", () => {
    const rng = new Rng(68);
    assertAdjoint((u) => scatterAdd(u, i32([0, 2, 0], [3]), 3), [rng.normal([3, 4])]);
  });

  it("cumsum: adjoint identity; Aᵀ of a forward cumsum is the reverse cumsum", () => {
    const rng = new Rng(69);
    for (const reverse of [false, true]) {
      const r = assertAdjoint((x) => bind1(Prim.Cumsum, [x], { axis: 1, reverse }), [rng.normal([2, 5])]);
      assertAllClose(r.transposed[0]!, naiveCumsum(new Rng(7).normal([2, 5]), 1, !reverse), { atol: 1e-15, rtol: 1e-14 });
    }
  });

  it("repeat: gradient sums the copies of each row (take-based)", () => {
    const rng = new Rng(70);
    const w = rng.normal([5, 2]);
    assertGradcheck((x) => project(repeat(x, i32([2, 0, 3])), w), [rng.normal([3, 2])]);
  });

  it("every differentiable indexing primitive was gradient-checked", () => cov.verify());
});
