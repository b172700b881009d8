// MpiGroup moves every storage type (bf16 as its bit patterns) and ragged shapes, empty ones included, unchanged; and
// its point-to-point sendRecv exchanges one array between two ranks.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runMpi } from "../../src/parallel/mpi-launch.js";
import { mpiSkipReason, mpiSuiteName } from "../harness/mpi.js";

interface Got {
  dtype: string;
  shape: number[];
  values: number[];
  bits: boolean;
}
type RankOut = Record<string, { allGather: Got[]; allToAll: Got[] }> & { sendRecv?: number[] };

const DTYPES = ["float32", "float64", "int32", "int8", "uint8", "bfloat16"];

/** what rank r built for rank j (the fixture's rule, written out again) */
function expected(dtype: string, r: number, j: number): Got {
  const n = (r + j) * 3;
  const base = dtype === "bfloat16" ? 0x3f80 : 0;
  return {
    dtype,
    shape: [r + j, 3],
    values: Array.from({ length: n }, (_, i) => (base + 100 * r + 10 * j + i) % 128),
    bits: dtype === "bfloat16",
  };
}

describe.skipIf(mpiSkipReason !== undefined)(mpiSuiteName("MpiGroup data path"), () => {
  it.each([2, 3])("%i ranks: every storage type and ragged (and empty) tensors, allGather and allToAll", async (n) => {
    const ranks = await runMpi<RankOut>(n, join(import.meta.dirname, "fixtures/mpi-dtypes-rank.mjs"), undefined, { timeoutMs: 60_000 });
    ranks.forEach((out, me) => {
      for (const dtype of DTYPES) {
        expect(out[dtype]!.allGather, `${dtype} allGather on rank ${me}`).toEqual(
          Array.from({ length: n }, (_, r) => expected(dtype, r, 1)),
        );
        expect(out[dtype]!.allToAll, `${dtype} allToAll on rank ${me}`).toEqual(
          Array.from({ length: n }, (_, r) => expected(dtype, r, me)),
        );
      }
      // sendRecv with rank me xor 1: its five values
      const peer = me ^ 1;
      expect(out.sendRecv, `sendRecv on rank ${me}`).toEqual(
        peer < n ? Array.from({ length: 5 }, (_, i) => 10 * peer + i + 0.5) : undefined,
      );
    });
  });
});
