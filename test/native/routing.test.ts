// Native top-k and integer argsort against the reference kernels.
import { describe, expect, it } from "vitest";
import { tensor, type Tensor } from "../../src/core/tensor.js";
import { nativeBackend as nativeBackendOf, nativeInfo } from "../../src/backends/native/index.js";
const nativeBackend = nativeBackendOf();
import { refBackend } from "../../src/backends/ref/index.js";
import { Prim } from "../../src/prims/prims.js";
import { shapeRules } from "../../src/prims/shape-rules.js";
import { randint, prngKey, uniform } from "../../src/nn/random.js";

const native = nativeBackend;

function both<P extends Prim.TopK | Prim.Argsort>(prim: P, x: Tensor, params: P extends Prim.TopK ? { k: number } : Record<string, never>) {
  const outs = shapeRules[prim]([x], params as never);
  const a = native!.run(prim, [x], params as never, outs).map((d) => Array.from(d));
  const b = refBackend.run(prim, [x], params as never, outs).map((d) => Array.from(d));
  return [a, b] as const;
}

describe.skipIf(native === undefined)(`native routing kernels (${nativeInfo().reason ?? "addon available"})`, () => {
  const topkCases: [string, Tensor, number][] = [
    ["ties go to the lower index", tensor([1, 3, 3, 2], [4]), 2],
    ["NaN first, -inf last", tensor([0.5, NaN, -Infinity, 2, NaN], [5]), 4],
    ["k = n", tensor([3, 1, 2, 1, 3], [5]), 5],
    ["k = 0", tensor([3, 1], [1, 2]), 0],
    ["no rows", tensor([], [0, 4]), 2],
    ["random [37, 64] k=8", uniform(prngKey(3), [37, 64]), 8],
    ["many ties [16, 12] k=5", tensor(Array.from(randint(prngKey(4), [16, 12], 0, 3).data), [16, 12]), 5],
  ];
  it.each(topkCases)("topK: %s", (_n, x, k) => {
    expect(native!.supports(Prim.TopK, [x], {} as never)).toBe(true);
    const [a, b] = both(Prim.TopK, x, { k });
    expect(a[1]).toEqual(b[1]);
    expect(a[0]).toEqual(b[0]);
  });

  const sortCases: [string, Tensor][] = [
    ["stable with repeats (counting sort)", tensor([3, 1, 2, 1, 3, 0, 1], [7], "int32")],
    ["negative keys", tensor([-2, 5, -2, 0, 5], [5], "int32")],
    ["wide range (comparison sort)", tensor([1e9, -1e9, 7, 1e9, -5, 7], [6], "int32")],
    ["expert ids of 8192 routed rows", randint(prngKey(5), [8192], 0, 64)],
    ["empty", tensor([], [0], "int32")],
  ];
  it.each(sortCases)("argsort int32: %s", (_n, x) => {
    expect(native!.supports(Prim.Argsort, [x], {} as never)).toBe(true);
    const [a, b] = both(Prim.Argsort, x, {});
    expect(a[0]).toEqual(b[0]);
  });

  it("argsort of floats and 2-D keys stay on the reference kernels", () => {
    expect(native!.supports(Prim.Argsort, [tensor([1, 0], [2])], {} as never)).toBe(false);
    expect(native!.supports(Prim.Argsort, [tensor([1, 0, 2, 3], [2, 2], "int32")], {} as never)).toBe(false);
  });
});
