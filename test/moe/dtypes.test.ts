import { describe, expect, it } from "vitest";
import { roundBf16InPlace, toBf16 } from "../../src/core/dtype.js";
import { cast } from "../../src/ops/elementwise.js";
import { moeConfig } from "../../src/moe/config.js";
import { routedMoeForward, type RoutedMoeWeights } from "../../src/moe/routed-moe.js";
import { randomInput, randomWeights, scaledError } from "./setup.js";

const d = { B: 2, S: 4, D: 8, H: 6 };

describe("layer dtypes", () => {
  it("bf16 rounding is round-half-to-even on the 16 high bits", () => {
    expect(toBf16(1 + 2 ** -8)).toBe(1); // tie -> even
    expect(toBf16(1 + 3 * 2 ** -8)).toBe(1 + 2 ** -6); // tie -> even (up)
    expect(toBf16(1 + 2 ** -7)).toBe(1 + 2 ** -7);
  });

  it("rounding an array in place agrees with toBf16 on every kind of float32 (ties, overflow to inf, NaN, denormals)", () => {
    const bits = new Uint32Array(20000);
    let s = 12345;
    for (let i = 0; i < bits.length; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      // low halves at and around the tie point, every exponent (0: denormals, 255: inf and NaN)
      bits[i] = i % 4 === 0 ? (s & 0xffff0000) | 0x8000 : i % 4 === 1 ? s | 0x7f800000 : s;
    }
    bits.set([0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0xffffffff, 0x00008000, 0x80018000], 0);
    const a = new Float32Array(bits.buffer.slice(0));
    roundBf16InPlace(a);
    const want = Array.from(new Float32Array(bits.buffer), (x) => toBf16(x));
    expect(Array.from(a).map((x, i) => Object.is(x, want[i]) || (Number.isNaN(x) && Number.isNaN(want[i])))).not.toContain(false);
  });

  it("bfloat16 compute (MaxText's default dtype) stays within bf16 accuracy of float64, float32 within 1e-6", () => {
    const keys = { decoder_block: "mixtral", num_experts: 4, num_experts_per_tok: 2, load_balance_loss_weight: 0.01 };
    const c64 = moeConfig({ ...keys, dtype: "float64", weight_dtype: "float64" });
    const w = randomWeights(c64, d, 21);
    const x = randomInput(c64, d, 22);
    const ref = routedMoeForward(c64, w, x);
    for (const [dtype, tol] of [
      ["float32", 1e-6],
      ["bfloat16", 5e-2],
    ] as const) {
      const c = moeConfig({ ...keys, dtype, weight_dtype: "float32" });
      const w32 = Object.fromEntries(Object.entries(w).map(([k, t]) => [k, cast(t, "float32")])) as unknown as RoutedMoeWeights;
      const o = routedMoeForward(c, w32, cast(x, "float32"));
      expect(o.output.dtype).toBe(dtype);
      expect(Array.from(o.topKIndices_BSK.data)).toEqual(Array.from(ref.topKIndices_BSK.data));
      expect(scaledError(cast(o.output, "float64"), ref.output), dtype).toBeLessThan(tol);
      expect(Math.abs(o.lbLoss!.item() - ref.lbLoss!.item())).toBeLessThan(tol);
    }
  });
});
