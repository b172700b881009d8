// Elementwise float32 add/sub/mul/div on the native backend (large same-shape operands) against the reference
// kernels, bit for bit, on random values with NaN, infinities, signed zeros and denormals, over several of the
// kernel's chunks; operands below MIN_NATIVE_ELEMENTWISE or of other dtypes stay on the reference kernels.
import { MIN_NATIVE_ELEMENTWISE } from "../../src/backends/native/kernels.js";
import { describe, expect, it } from "vitest";
import { nativeBackend as nativeBackendOf, nativeInfo } from "../../src/backends/native/index.js";
const nativeBackend = nativeBackendOf();
import { Tensor } from "../../src/core/tensor.js";
import { add, div, mul, sub } from "../../src/ops/elementwise.js";
import { Prim } from "../../src/prims/prims.js";
import { withBackend } from "../harness/backends.js";

const info = nativeInfo();

function values(n: number, seed: number): Float32Array {
  const u = new Uint32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    u[i] = s;
  }
  const x = new Float32Array(u.buffer);
  const special = [NaN, Infinity, -Infinity, 0, -0, 1e-40, -3e-39, 1, -1];
  for (let i = 0; i < special.length; i++) x[i * 7] = special[i]!;
  return x;
}

describe.skipIf(!info.available)(`native elementwise float32${info.available ? "" : ` (skipped: ${info.reason})`}`, () => {
  const n = 3 * 65536 + 101;
  const a = new Tensor(values(n, 1), [n], "float32");
  const b = new Tensor(values(n, 2), [n], "float32");

  for (const [name, op, prim] of [["add", add, Prim.Add], ["sub", sub, Prim.Sub], ["mul", mul, Prim.Mul], ["div", div, Prim.Div]] as const) {
    it(`${name} equals the reference kernel bit for bit`, async () => {
      expect(nativeBackend!.supports(prim, [a, b], {} as never)).toBe(true);
      const native = new Tensor(nativeBackend!.run(prim, [a, b], {} as never, [{ shape: [n], dtype: "float32" }])[0]!, [n], "float32");
      const viaOps = await withBackend("native", () => op(a, b));
      expect(Array.from(viaOps.data.subarray(0, 64))).toEqual(Array.from(native.data.subarray(0, 64)));
      const ref = await withBackend("ref", () => op(a, b));
      const u = new Uint32Array((native.data as Float32Array).buffer);
      const v = new Uint32Array((ref.data as Float32Array).buffer);
      let diff = 0;
      for (let i = 0; i < n; i++) {
        // NaN payloads may differ between kernels; a NaN must be a NaN on both sides
        const both = Number.isNaN(native.data[i]!) && Number.isNaN(ref.data[i]!);
        diff += u[i] === v[i] || both ? 0 : 1;
      }
      expect(diff).toBe(0);
    });
  }

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
