import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { tensor } from "../../src/core/tensor.js";
import { argsort, bincount, cumsum, oneHot, repeat, scatterAdd } from "../../src/ops/indexing.js";
import { floorDivide, mod } from "../../src/ops/elementwise.js";
import { range } from "../harness/naive.js";

const RUNS = { seed: 42, numRuns: 100 };
const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });

describe("integer outputs are exact", () => {
  it("bincount: counts of in-range values, everything else ignored", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -3, max: 9 }), { maxLength: 30 }), fc.integer({ min: 0, max: 8 }), (xs, length) => {
        const y = bincount(tensor(xs, [xs.length], "int32"), length);
        expect(y.dtype).toBe("int32");
        expect(Array.from(y.data)).toEqual(range(length).map((v) => xs.filter((x) => x === v).length));
      }),
      RUNS,
    );
  });

  it("argsort: a stable ascending permutation (ties keep index order)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -3, max: 3 }), { maxLength: 25 }), (xs) => {
        const got = Array.from(argsort(tensor(xs, [xs.length], "int32")).data);
        const want = range(xs.length).sort((a, b) => xs[a]! - xs[b]! || a - b);
        expect(got).toEqual(want);
      }),
      RUNS,
    );
  });

  it("cumsum (int32): exact prefix sums along the last axis, both directions", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -1000, max: 1000 }), { maxLength: 30 }), fc.boolean(), (xs, reverse) => {
        const y = cumsum(tensor(xs, [xs.length], "int32"), 0, reverse);
        let acc = 0;
        const want = reverse
          ? [...xs]
              .reverse()
              .map((v) => (acc += v))
              .reverse()
          : xs.map((v) => (acc += v));
        expect(y.dtype).toBe("int32");
        expect(Array.from(y.data)).toEqual(want);
      }),
      RUNS,
    );
  });

  it("floor_div / mod: a = q·b + r with 0 ≤ |r| < |b| and sign(r) = sign(b), over the int32 range (BigInt reference)", () => {
    fc.assert(
      fc.property(
        int32,
        int32.filter((b) => b !== 0),
        (a, b) => {
          const q = Number(floorDivide(tensor([a], [1], "int32"), tensor([b], [1], "int32")).data[0]);
          const r = Number(mod(tensor([a], [1], "int32"), tensor([b], [1], "int32")).data[0]);
          const A = BigInt(a);
          const B = BigInt(b);
          let Q = A / B; // truncates toward zero
          if (A % B !== 0n && A < 0n !== B < 0n) Q -= 1n;
          const R = A - Q * B;
          expect(q).toBe(Number(BigInt.asIntN(32, Q))); // -2^31 / -1 wraps, as in int32 numpy/jax
          expect(r).toBe(Number(R));
        },
      ),
      RUNS,
    );
  });

  it("scatterAdd (int32): exact sums of the rows sent to each index", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: -1000, max: 1000 })), { maxLength: 20 }), (pairs) => {
        const y = scatterAdd(
          tensor(
            pairs.map((p) => p[1]),
            [pairs.length],
            "int32",
          ),
          tensor(
            pairs.map((p) => p[0]),
            [pairs.length],
            "int32",
          ),
          5,
        );
        expect(Array.from(y.data)).toEqual(range(5).map((i) => pairs.filter((p) => p[0] === i).reduce((a, p) => a + p[1], 0)));
      }),
      RUNS,
    );
  });

  it("oneHot (int32): a single 1 per row at the id, zero rows for out-of-range ids", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -2, max: 6 }), { maxLength: 12 }), (ids) => {
        const y = oneHot(tensor(ids, [ids.length], "int32"), 5, "int32");
        expect(Array.from(y.data)).toEqual(ids.flatMap((id) => range(5).map((c) => (c === id ? 1 : 0))));
      }),
      RUNS,
    );
  });

  it("repeat with totalRepeatLength: the JAX scatter/cumsum construction (pads with the last row, truncates)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 0, max: 14 }),
        (reps, total) => {
          const n = reps.length;
          const y = repeat(
            tensor(
              range(n).map((v) => 10 * v),
              [n],
              "int32",
            ),
            tensor(reps, [n], "int32"),
            total,
          );
          // jnp.repeat: exclusive cumsum of repeats -> block starts -> marks (out-of-range dropped) -> cumsum - 1
          const marks = new Array<number>(total).fill(0);
          let start = 0;
          for (const r of reps) {
            if (start < total) marks[start]!++;
            start += r;
          }
          let c = 0;
          const want = marks.map((m) => 10 * ((c += m) - 1));
          expect(Array.from(y.data)).toEqual(want);
        },
      ),
      RUNS,
    );
  });
});
