import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Tensor, tensor } from "../../src/core/tensor.js";
import { useBackend } from "../../src/backends/select.js";
import { bind1 } from "../../src/autodiff/bind.js";
import { Prim } from "../../src/prims/prims.js";
import { batchMatmul, einsum, matmul } from "../../src/ops/matmul.js";
import { assertAdjoint } from "../harness/adjoint.js";
import { assertGradcheck, project } from "../harness/gradcheck.js";
import { Rng } from "../harness/random.js";
import { assertAllClose, assertExact, nmse, roundTo } from "../harness/tolerance.js";
import { expectPrimError, gradCoverage } from "../harness/families.js";
import { build, indices, ravel } from "../harness/naive.js";
import { testBackends } from "../harness/backends.js";
import { conformGrad } from "../harness/conformance.js";
import { BMM_CASES, checkBmm } from "../harness/matmul-cases.js";

beforeAll(() => void useBackend("ref"));
const cov = gradCoverage("matmul-einsum");
const s = (shape: readonly number[]): string => `[${shape.join(",")}]`;

function naiveBmm(a: Tensor, b: Tensor): number[] {
  const [B, M, K] = a.shape as [number, number, number];
  const N = b.shape[2]!;
  return build([B, M, N], ([bb, i, j]) => {
    let acc = 0;
    for (let p = 0; p < K; p++) acc += a.data[ravel([bb!, i!, p], a.shape)]! * b.data[ravel([bb!, p, j!], b.shape)]!;
    return acc;
  });
}

/** Naive einsum: loop over every output index and every assignment of the summed labels. */
function naiveEinsum(spec: string, a: Tensor, b: Tensor): { shape: number[]; data: number[] } {
  const [ins, out = ""] = spec.split("->");
  const [la = "", lb = ""] = ins!.split(",");
  const dims = new Map<string, number>();
  [...la].forEach((l, i) => dims.set(l, a.shape[i]!));
  [...lb].forEach((l, i) => dims.set(l, b.shape[i]!));
  const outL = [...out];
  const sumL = [...new Set([...la, ...lb])].filter((l) => !outL.includes(l));
  const shape = outL.map((l) => dims.get(l)!);
  const sumShape = sumL.map((l) => dims.get(l)!);
  const data = build(shape, (oi) => {
    const val = new Map<string, number>();
    outL.forEach((l, i) => val.set(l, oi[i]!));
    let acc = 0;
    for (const si of indices(sumShape)) {
      sumL.forEach((l, i) => val.set(l, si[i]!));
      const ia = [...la].map((l) => val.get(l)!);
      const ib = [...lb].map((l) => val.get(l)!);
      acc += a.data[ravel(ia, a.shape)]! * b.data[ravel(ib, b.shape)]!;
    }
    return acc;
  });
  return { shape, data };
}

describe.each(testBackends())("batch_matmul on %s", (backend) => {
  afterAll(() => void useBackend("ref"));
  for (const shape of BMM_CASES) {
    const [B, M, K, N] = shape;
    for (const dtype of ["float64", "float32", "bfloat16", "int32"] as const) {
      it(`batch_matmul: ${dtype} ${s([B, M, K])} x ${s([B, K, N])} matches ref in float64${backend === "ref" ? " and the naive loop" : ""}`, () => {
        const { ins, y } = checkBmm(backend, shape, dtype, 31);
        expect(y.shape).toEqual([B, M, N]);
        expect(y.dtype).toBe(dtype);
        if (backend !== "ref") return;
        // the kernel accumulates in float64 and rounds once: the naive float64 sum rounded to dtype
        assertAllClose(
          y,
          naiveBmm(ins[0]!, ins[1]!).map((v) => roundTo(dtype, v)),
          { atol: 1e-300, rtol: dtype === "float64" ? 1e-14 : 0 },
        );
      });
    }
  }

  it("batch_matmul: value and gradients of <x·y, w> match ref in float64", () => {
    const rng = new Rng(37);
    const [B, M, K, N] = [3, 9, 40, 11];
    const ins = [rng.tensor([B, M, K]), rng.tensor([B, K, N]), rng.tensor([B, M, N])];
    const depth = Math.max(M, K, N);
    conformGrad(backend, (x, y, w) => project(batchMatmul(x!, y!), w!), ins, { k: [B * M * K * N, depth, depth, depth], nmse: true });
  });
});

describe("batch_matmul", () => {
  it("batch_matmul: float32 result tracks float64 (NMSE < 1e-13)", () => {
    const rng = new Rng(36);
    const a = rng.normal([2, 8, 16]);
    const b = rng.normal([2, 16, 4]);
    const y32 = batchMatmul(tensor(a.data, a.shape, "float32"), tensor(b.data, b.shape, "float32"));
    expect(nmse(y32, batchMatmul(a, b))).toBeLessThan(1e-13);
  });

  it("batch_matmul: K = 0 gives exact zeros", () => {
    const y = bind1(Prim.BatchMatmul, [tensor([], [1, 2, 0], "float64"), tensor([], [1, 0, 3], "float64")], {});
    expect(y.toArray()).toEqual([0, 0, 0, 0, 0, 0]);
  });

  const a = tensor([1, 2, 3, 4, 5, 6], [1, 2, 3], "float64");
  it("batch_matmul: rejects rank-2 operands", () =>
    expectPrimError(
      () => bind1(Prim.BatchMatmul, [tensor([1, 2], [1, 2], "float64"), tensor([1, 2], [2, 1], "float64")], {}),
      "batch_matmul",
      /cannot multiply/,
    ));
  it("batch_matmul: rejects mismatched batch dims", () =>
    expectPrimError(() => bind1(Prim.BatchMatmul, [a, tensor(new Array(6).fill(1), [2, 3, 1], "float64")], {}), "batch_matmul"));
  it("batch_matmul: rejects mismatched contraction dims", () =>
    expectPrimError(() => bind1(Prim.BatchMatmul, [a, tensor(new Array(4).fill(1), [1, 2, 2], "float64")], {}), "batch_matmul"));
  it("batch_matmul: rejects mixed dtypes", () =>
    expectPrimError(() => bind1(Prim.BatchMatmul, [a, tensor([1, 1, 1], [1, 3, 1], "float32")], {}), "batch_matmul", /dtypes/));

  it("matmul (op): leading dims are batched; mismatched leading dims throw [matmul]", () => {
    const rng = new Rng(32);
    const x = rng.normal([2, 2, 3, 4]);
    const w = rng.normal([2, 2, 4, 1]);
    const y = matmul(x, w);
    expect(y.shape).toEqual([2, 2, 3, 1]);
    const want = naiveEinsum("abij,abjk->abik", x, w);
    assertAllClose(y, want.data, { atol: 1e-14, rtol: 1e-14 });
    expectPrimError(() => matmul(x, rng.normal([2, 3, 4, 1])), "matmul");
  });

  it("batch_matmul: gradient in both operands matches central differences", () => {
    const rng = new Rng(33);
    const w = rng.normal([2, 3, 2]);
    assertGradcheck((x, y) => project(batchMatmul(x, y), w), [rng.normal([2, 3, 4]), rng.normal([2, 4, 2])]);
    cov.mark(Prim.BatchMatmul);
  });

  it("batch_matmul: adjoint identity in the left operand (right fixed)", () => {
    const rng = new Rng(34);
    const b = rng.normal([2, 4, 3]);
    assertAdjoint((x) => batchMatmul(x, b), [rng.normal([2, 5, 4])]);
  });

  it("batch_matmul: adjoint identity in the right operand (left fixed)", () => {
    const rng = new Rng(35);
    const a = rng.normal([2, 5, 4]);
    assertAdjoint((y) => batchMatmul(a, y), [rng.normal([2, 4, 3])]);
  });

  it("every differentiable matmul primitive was gradient-checked", () => cov.verify());
});

describe("einsum", () => {
  const CASES: readonly [string, readonly number[], readonly number[]][] = [
    // the MoE specs
    ["BSM,EMH->BSEH", [2, 3, 4], [3, 4, 5]],
    ["BSEM,BSE->BSM", [2, 3, 4, 5], [2, 3, 4]],
    ["BSM,BSEC->EBCM", [2, 3, 4], [2, 3, 2, 3]],
    ["BNSM,BNSEC->EBNCM", [2, 2, 3, 4], [2, 2, 3, 2, 3]],
    ["EBCM,EMH->EBCH", [2, 2, 3, 4], [2, 4, 3]],
    ["EBCH,BSEC->BSH", [3, 2, 2, 4], [2, 5, 3, 2]],
    ["TKD,TK->TD", [5, 2, 3], [5, 2]],
    ["BSD,DE->BSE", [2, 3, 4], [4, 5]],
    // generic shapes
    ["ij,jk->ik", [3, 4], [4, 2]],
    ["ij,jk->ki", [3, 4], [4, 2]],
    ["ij,jk->i", [3, 4], [4, 2]],
    ["i,i->", [5], [5]],
    ["ij,kl->ijkl", [2, 3], [2, 2]],
    ["bij,bjk->bik", [3, 2, 4], [3, 4, 1]],
    ["ab,cd->da", [2, 3], [4, 5]],
    // size-0 and size-1 dims
    ["BSM,EMH->BSEH", [0, 3, 4], [3, 4, 5]],
    ["BSM,EMH->BSEH", [2, 3, 0], [3, 0, 5]],
    ["BSEM,BSE->BSM", [1, 1, 1, 1], [1, 1, 1]],
  ];
  for (const [spec, sa, sb] of CASES) {
    it(`einsum: "${spec}" with ${s(sa)}, ${s(sb)} matches naive loops`, () => {
      const rng = new Rng(41);
      const a = rng.normal(sa);
      const b = rng.normal(sb);
      const y = einsum(spec, a, b);
      const want = naiveEinsum(spec, a, b);
      expect(y.shape).toEqual(want.shape);
      assertAllClose(y, want.data, { atol: 1e-14, rtol: 1e-13 }, spec);
    });
  }

  for (const spec of ["BSM,EMH->BSEH", "BSEM,BSE->BSM", "BSM,BSEC->EBCM", "BNSM,BNSEC->EBNCM", "ij,jk->i"]) {
    it(`einsum: "${spec}" gradient in both operands matches central differences`, () => {
      const rng = new Rng(42);
      const sizes: Record<string, number> = { B: 2, S: 2, M: 3, E: 2, H: 2, C: 2, N: 2, i: 2, j: 3, k: 2 };
      const [ins = "", out = ""] = spec.split("->");
      const [la = "", lb = ""] = ins.split(",");
      const a = rng.normal([...la].map((l) => sizes[l]!));
      const b = rng.normal([...lb].map((l) => sizes[l]!));
      const w = rng.normal([...out].map((l) => sizes[l]!));
      assertGradcheck((x, y) => project(einsum(spec, x, y), w), [a, b]);
    });
  }

  it("einsum: spaces are ignored", () => {
    const rng = new Rng(43);
    const a = rng.normal([2, 3]);
    const b = rng.normal([3, 2]);
    assertExact(einsum(" ij , jk -> ik ", a, b), einsum("ij,jk->ik", a, b));
  });

  const a = tensor([1, 2, 3, 4, 5, 6], [2, 3], "float64");
  it("einsum: rejects a one-operand spec", () => expectPrimError(() => einsum("ij->ji", a, a), "einsum", /cannot parse/));
  it("einsum: rejects an implicit output", () => expectPrimError(() => einsum("ij,jk", a, a), "einsum", /cannot parse/));
  it("einsum: rejects labels that do not match the operand rank", () =>
    expectPrimError(() => einsum("ijk,jk->i", a, a), "einsum", /ranks/));
  it("einsum: rejects a label with two sizes", () =>
    expectPrimError(() => einsum("ij,jk->ik", a, a), "einsum", /label j has sizes 3 and 2/));
  it('einsum: a repeated label in one operand ("ii,i->i") is an [einsum] error', () =>
    expectPrimError(() => einsum("ii,i->i", tensor([1, 2, 3, 4], [2, 2], "float64"), tensor([1, 2], [2], "float64")), "einsum"));
  it("einsum: rejects an output label absent from the inputs", () =>
    expectPrimError(() => einsum("ij,ij->z", a, a), "einsum", /output label z/));
});
