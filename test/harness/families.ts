// The primitive families of test/prims/, and a per-file record of which primitives were gradient-checked.
import { expect } from "vitest";
import { Prim } from "../../src/prims/prims.js";
import { vjpRules } from "../../src/autodiff/vjp-rules.js";

export const FAMILIES = {
  elementwise: [
    Prim.Neg,
    Prim.Exp,
    Prim.Log,
    Prim.Log1p,
    Prim.Sqrt,
    Prim.Tanh,
    Prim.Sigmoid,
    Prim.Abs,
    Prim.Sign,
    Prim.Cast,
    Prim.Add,
    Prim.Sub,
    Prim.Mul,
    Prim.Div,
    Prim.Max,
    Prim.Min,
    Prim.FloorDiv,
    Prim.Mod,
    Prim.Less,
    Prim.LessEqual,
    Prim.Equal,
    Prim.Greater,
    Prim.Where,
  ],
  reduce: [Prim.ReduceSum, Prim.ReduceMax, Prim.Softmax],
  movement: [Prim.Reshape, Prim.Transpose, Prim.BroadcastTo, Prim.Slice, Prim.Pad, Prim.Concat, Prim.Iota],
  "matmul-einsum": [Prim.BatchMatmul],
  indexing: [Prim.Gather, Prim.ScatterAdd, Prim.TopK, Prim.Argsort, Prim.Bincount, Prim.Cumsum],
  segment: [Prim.Gmm, Prim.Tgmm],
  quantize: [Prim.Quantize, Prim.QuantizedGmm],
  "expert-ffn": [Prim.ExpertFfn, Prim.ExpertFfnBwd],
  "optim-steps": [Prim.AdamwStep, Prim.SgdStep],
} as const satisfies Record<string, readonly Prim[]>;

export type Family = keyof typeof FAMILIES;

/** Primitives with a VJP rule (vjpRules entry not null). */
export function differentiable(prims: readonly Prim[]): Prim[] {
  return prims.filter((p) => vjpRules[p] !== null);
}

/**
 * Records the primitives a family's gradient checks covered; `verify` (run as the file's last test)
 * asserts that every differentiable primitive of the family was checked.
 */
export function gradCoverage(family: Family): { mark(p: Prim): void; verify(): void } {
  const seen = new Set<Prim>();
  return {
    mark: (p) => void seen.add(p),
    verify: () => {
      const want = differentiable(FAMILIES[family]).sort();
      expect([...seen].sort()).toEqual(want);
    },
  };
}

/** Asserts `f` throws a moekit error whose message starts with `[prim]`. */
export function expectPrimError(f: () => unknown, prim: string, contains?: string | RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, `expected [${prim}] to throw`).toBeInstanceOf(Error);
  const msg = (err as Error).message;
  expect(msg.startsWith(`[${prim}]`), `message "${msg}" should start with [${prim}]`).toBe(true);
  if (contains !== undefined) expect(msg).toMatch(contains);
}
