// Hostile inputs, item "NaN in the gate": non-finite gate logits are an error naming the operand that holds
// the NaN or Inf, instead of every token going to experts 0 and 1.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { MoeError } from "../../src/core/errors.js";
import { Tensor } from "../../src/core/tensor.js";
import { writeNpy } from "../../src/io/index.js";
import { moeConfig } from "../../src/moe/config.js";
import { RoutedMoE, routedMoeForward } from "../../src/moe/routed-moe.js";
import { RoutedAndSharedMoE } from "../../src/moe/routed-and-shared-moe.js";
import { normal, prngKey } from "../../src/nn/random.js";
import { useCli, useScratch } from "./cli-harness.js";

const cli = useCli();
const scratch = useScratch("nonfinite");
const KEYS = { emb_dim: 8, moe_mlp_dim: 16, num_experts: 4, num_experts_per_tok: 2, dtype: "float32" };

/** A copy of `t` with `value` at flat index `i`. */
function withValue(t: Tensor, i: number, value: number): Tensor {
  const d = Float32Array.from(t.data);
  d[i] = value;
  return new Tensor(d, t.shape, t.dtype);
}

const x = normal(prngKey(1), [1, 4, 8], "float32");

describe("non-finite gate logits are refused", () => {
  const cfg = moeConfig(KEYS);
  const layer = new RoutedMoE(cfg, { key: prngKey(0) });

  it("a NaN in the input names the input and the position", () => {
    expect(() => layer.forward(withValue(x, 8 + 2, NaN))).toThrow(
      /^\[RoutedMoE\] gate logits are not finite \(NaN at \[0,1,0\]\): the layer input float32\[1,4,8\] holds NaN at \[0,1,2\]$/,
    );
  });

  it("an Inf in the input is refused too", () => {
    expect(() => layer.forward(withValue(x, 31, -Infinity))).toThrow(/holds -Infinity at \[0,3,7\]$/);
  });

  it("a NaN in the gate kernel names gate/kernel", () => {
    const w = { ...layer.weights, gateKernel: withValue(layer.weights.gateKernel, 5, NaN) };
    expect(() => routedMoeForward(cfg, w, x)).toThrow(/the gate kernel \(gate\/kernel\) float32\[8,4\] holds NaN at \[1,1\]$/);
  });

  it("finite operands whose product overflows are named as such", () => {
    const huge = new Tensor(new Float32Array(32).fill(3e38), [1, 4, 8], "float32");
    const w = { ...layer.weights, gateKernel: new Tensor(new Float32Array(32).fill(1), [8, 4], "float32") };
    expect(() => routedMoeForward(cfg, w, huge)).toThrow(/: the gate matmul overflowed$/);
  });

  it("a RoutedAndSharedMoE refuses as well, with a MoeError", () => {
    const shared = new RoutedAndSharedMoE(moeConfig({ ...KEYS, shared_experts: 1, decoder_block: "deepseek" }), { key: prngKey(0) });
    expect(() => shared.forward(withValue(x, 0, NaN))).toThrow(MoeError);
  });

  it("finite inputs still run", () => {
    expect(layer.forward(x).output.shape).toEqual([1, 4, 8]);
  });
});

describe("moekit run refuses a NaN input", () => {
  it("run --checkpoint --input with a NaN: exit 2 and one line naming the input", async () => {
    const ckpt = scratch("ckpt");
    expect((await cli("init", "--preset", "tiny-qwen3-30b-a3b", "--format", "hf", "--family", "qwen3_moe", ckpt)).code).toBe(0);
    const input = path.join(path.dirname(ckpt), "x.npy");
    fs.mkdirSync(path.dirname(input), { recursive: true });
    writeNpy(input, withValue(normal(prngKey(2), [1, 3, 32], "float32"), 40, NaN));
    const r = await cli("run", "--checkpoint", ckpt, "--input", input);
    expect(r.code).toBe(2);
    // moekit run scans the input before the forward (test/hostile/non-finite.test.ts): it is named as --input
    expect(r.err.split("\n").at(-1)).toBe(`moekit run: [--input ${input}] float32[1,3,32] holds NaN at [0,1,8]`);
  });
});
