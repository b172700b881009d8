import { describe, expect, it } from "vitest";
import { toBf16 } from "../../src/core/dtype.js";
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
