// The case tables of the matmul-like primitives (gmm, tgmm, batch_matmul) and one conformance check per primitive,
// shared by test/prims (every backend at its default settings) and test/native (each ISA). Shapes: 0 rows, 1 row,
// empty groups, rows past sum(groupSizes), k = 0, odd sizes, and sizes past the native kernels' blocks.
import type { DType } from "../../src/core/dtype.js";
import { Tensor, tensor } from "../../src/core/tensor.js";
import type { BackendChoice } from "../../src/backends/select.js";
import { bind1 } from "../../src/autodiff/bind.js";
import { Prim } from "../../src/prims/prims.js";
import { gmm, tgmm } from "../../src/ops/segment.js";
import { conform } from "./conformance.js";
import { Rng } from "./random.js";

export interface GmmCase {
  what: string;
  m: number;
  k: number;
  n: number;
  gs: number[];
}

export const GMM_CASES: readonly GmmCase[] = [
  { what: "an empty expert group and one row past sum(groupSizes)", m: 6, k: 3, n: 4, gs: [2, 0, 3] },
  { what: "a single group covering every row", m: 5, k: 2, n: 3, gs: [5] },
  { what: "all groups empty", m: 4, k: 3, n: 2, gs: [0, 0, 0] },
  { what: "zero rows", m: 0, k: 3, n: 2, gs: [0, 0] },
  { what: "zero groups", m: 3, k: 2, n: 2, gs: [] },
  { what: "k = 0", m: 3, k: 0, n: 2, gs: [1, 2] },
  { what: "one row per group", m: 5, k: 3, n: 3, gs: [1, 1, 1, 1, 1] },
  { what: "one element", m: 1, k: 1, n: 1, gs: [1] },
  { what: "odd sizes and a trailing empty group", m: 7, k: 5, n: 3, gs: [3, 4, 0] },
  { what: "one row, n = 1", m: 1, k: 7, n: 1, gs: [1] },
  { what: "one row between empty groups", m: 1, k: 1, n: 7, gs: [0, 1, 0] },
  { what: "k = n = 100", m: 3, k: 100, n: 100, gs: [1, 2] },
  { what: "a row past the sum, odd sizes", m: 5, k: 7, n: 9, gs: [2, 0, 2] },
  { what: "k = 0, n odd", m: 9, k: 0, n: 7, gs: [4, 5] },
  { what: "13 rows, k 33, n 31", m: 13, k: 33, n: 31, gs: [13] },
  { what: "rows past the sum and empty groups, n = 100", m: 40, k: 17, n: 100, gs: [10, 0, 0, 17, 3] },
  { what: "k past a contraction block", m: 25, k: 300, n: 33, gs: [12, 13] },
  { what: "n one past a multiple of 64", m: 64, k: 7, n: 65, gs: [16, 16, 16, 16] },
  { what: "n past a work item", m: 30, k: 20, n: 520, gs: [7, 23] },
];

export const describeGmm = (c: GmmCase): string => `m=${c.m}, k=${c.k}, n=${c.n}, groups [${c.gs.join(",")}]`;
const i32 = (xs: number[]): Tensor => tensor(xs, [xs.length], "int32");
const draw = (rng: Rng, shape: readonly number[], dtype: DType): Tensor => tensor(rng.normal(shape).data, shape, dtype);
const used = (gs: number[]): number => gs.reduce((a, b) => a + b, 0);

/** Exactly +0 (not -0, not a tiny value) everywhere in data[from, to). */
function expectPlusZeros(data: ArrayLike<number>, from: number, to: number, what: string): void {
  for (let i = from; i < to; i++) if (!Object.is(data[i], 0)) throw new Error(`${what}: element ${i} is ${data[i]}, expected +0`);
}

/** gmm of the case on `backend` against ref in float64; rows past sum(groupSizes) exactly +0. Returns inputs and output. */
export function checkGmm(
  backend: BackendChoice,
  c: GmmCase,
  transposeRhs: boolean,
  dtype: DType,
  seed: number,
): { ins: Tensor[]; y: Tensor } {
  const rng = new Rng(seed);
  const G = c.gs.length;
  const ins = [draw(rng, [c.m, c.k], dtype), draw(rng, transposeRhs ? [G, c.n, c.k] : [G, c.k, c.n], dtype), i32(c.gs)];
  const what = `gmm ${describeGmm(c)} transposeRhs=${transposeRhs} ${dtype} on ${backend}`;
  const [y] = conform(backend, (l, r, g) => gmm(l!, r!, g!, transposeRhs), ins, { k: c.k, nmse: true }, what);
  expectPlusZeros(y!.data, used(c.gs) * c.n, y!.size, `${what}: rows past the sum`);
  return { ins, y: y! };
}

/** tgmm of the case on `backend` against ref in float64; empty groups exactly +0. Returns inputs and output. */
export function checkTgmm(backend: BackendChoice, c: GmmCase, dtype: DType, seed: number): { ins: Tensor[]; y: Tensor } {
  const rng = new Rng(seed);
  const ins = [draw(rng, [c.m, c.k], dtype), draw(rng, [c.m, c.n], dtype), i32(c.gs)];
  const what = `tgmm ${describeGmm(c)} ${dtype} on ${backend}`;
  const [y] = conform(backend, (l, r, g) => tgmm(l!, r!, g!), ins, { k: Math.max(0, ...c.gs), nmse: true }, what);
  c.gs.forEach((s, g) => {
    if (s === 0) expectPlusZeros(y!.data, g * c.k * c.n, (g + 1) * c.k * c.n, `${what}: empty group ${g}`);
  });
  return { ins, y: y! };
}

/** batch_matmul shapes [B, m, k] x [B, k, n]. */
export const BMM_CASES: readonly (readonly [number, number, number, number])[] = [
  [1, 1, 1, 1],
  [2, 3, 4, 5],
  [3, 5, 7, 1],
  [2, 3, 0, 5],
  [0, 3, 4, 2],
  [2, 0, 4, 3],
  [2, 7, 100, 1],
  [4, 13, 31, 33],
  [1, 100, 7, 100],
];

/** batch_matmul on `backend` against ref in float64 (int32 exactly). Returns inputs and output. */
export function checkBmm(
  backend: BackendChoice,
  [B, m, k, n]: readonly [number, number, number, number],
  dtype: DType,
  seed: number,
): { ins: Tensor[]; y: Tensor } {
  const rng = new Rng(seed);
  const make = (sh: number[]): Tensor => (dtype === "int32" ? rng.randint(sh, -5, 6) : draw(rng, sh, dtype));
  const ins = [make([B, m, k]), make([B, k, n])];
  const [y] = conform(
    backend,
    (a, b) => bind1(Prim.BatchMatmul, [a!, b!], {}),
    ins,
    { k, nmse: true },
    `batch_matmul [${B},${m},${k}]x[${B},${k},${n}] ${dtype} on ${backend}`,
  );
  return { ins, y: y! };
}
