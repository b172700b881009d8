// Which elementwise operands the native backend takes: float32 add/sub/mul/div of one shape from
// MIN_NATIVE_ELEMENTWISE elements; smaller operands or other dtypes stay on the reference kernels. (The kernels
// against the spec, bit for bit over several chunks with NaN, infinities, signed zeros and denormals:
// test/prims/elementwise.test.ts, on every backend.)
import { MIN_NATIVE_ELEMENTWISE } from "../../src/backends/native/kernels.js";
import { describe, expect, it } from "vitest";
import { nativeBackend as nativeBackendOf, nativeInfo } from "../../src/backends/native/index.js";
const nativeBackend = nativeBackendOf();
import { Tensor } from "../../src/core/tensor.js";
import { Prim } from "../../src/prims/prims.js";

const info = nativeInfo();

describe.skipIf(!info.available)(`native elementwise float32${info.available ? "" : ` (skipped: ${info.reason})`}`, () => {
  it("takes large float32 operands of one shape only", () => {
    const backend = nativeBackend!;
    const big = new Tensor(new Float32Array(MIN_NATIVE_ELEMENTWISE), [MIN_NATIVE_ELEMENTWISE], "float32");
    const small = new Tensor(new Float32Array(MIN_NATIVE_ELEMENTWISE - 1), [MIN_NATIVE_ELEMENTWISE - 1], "float32");
    const other = new Tensor(new Float32Array(MIN_NATIVE_ELEMENTWISE), [2, MIN_NATIVE_ELEMENTWISE / 2], "float32");
    const f64 = new Tensor(new Float64Array(MIN_NATIVE_ELEMENTWISE), [MIN_NATIVE_ELEMENTWISE], "float64");
    expect(backend.supports(Prim.Mul, [big, big], {} as never)).toBe(true);
    expect(backend.supports(Prim.Mul, [small, small], {} as never)).toBe(false);
    expect(backend.supports(Prim.Add, [big, other], {} as never)).toBe(false);
    expect(backend.supports(Prim.Div, [f64, f64], {} as never)).toBe(false);
    expect(backend.supports(Prim.Max, [big, big], {} as never)).toBe(false);
  });
});
