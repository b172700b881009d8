// Which routing inputs the native backend takes (its top-k and integer argsort against the spec run in
// test/prims/indexing.test.ts, on every backend).
import { describe, expect, it } from "vitest";
import { tensor } from "../../src/core/tensor.js";
import { nativeBackend as nativeBackendOf, nativeInfo } from "../../src/backends/native/index.js";
const nativeBackend = nativeBackendOf();
import { Prim } from "../../src/prims/prims.js";

const native = nativeBackend;

describe.skipIf(native === undefined)(`native routing kernels (${nativeInfo().reason ?? "addon available"})`, () => {
  it("top_k of float32 of any rank >= 1 and argsort of 1-D int32 run natively", () => {
    for (const shape of [[4], [0, 4], [2, 3, 5]]) {
      const x = tensor(new Array<number>(shape.reduce((a, b) => a * b, 1)).fill(0), shape, "float32");
      expect(native!.supports(Prim.TopK, [x], {} as never), `top_k [${shape.join(",")}]`).toBe(true);
    }
    expect(native!.supports(Prim.Argsort, [tensor([3, 1, 2], [3], "int32")], {} as never)).toBe(true);
    expect(native!.supports(Prim.Argsort, [tensor([], [0], "int32")], {} as never)).toBe(true);
  });

  it("top_k of float64 or int32, argsort of floats and 2-D keys stay on the reference kernels", () => {
    expect(native!.supports(Prim.TopK, [tensor([1, 0], [2], "float64")], {} as never)).toBe(false);
    expect(native!.supports(Prim.TopK, [tensor([1, 0], [2], "int32")], {} as never)).toBe(false);
    expect(native!.supports(Prim.Argsort, [tensor([1, 0], [2])], {} as never)).toBe(false);
    expect(native!.supports(Prim.Argsort, [tensor([1, 0, 2, 3], [2, 2], "int32")], {} as never)).toBe(false);
  });
});
