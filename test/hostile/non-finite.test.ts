// Hostile inputs, item "NaN anywhere": NaN or Inf in expert weights or inputs is a NonFiniteError naming the tensor
// and its first bad element: opt-in in the API (checkFinite, ForwardOptions.checkFinite), always in moekit run. And
// the forward pass and the gated-shared constructor check the memory budget before allocating.
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { setMemoryBudget } from "../../src/core/memory.js";
import { Tensor } from "../../src/core/tensor.js";
import { loadSafetensors, saveSafetensors } from "../../src/io/index.js";
import { moeConfig } from "../../src/moe/config.js";
import { checkFinite, NonFiniteError } from "../../src/moe/finite.js";
import { GatedSharedMoE } from "../../src/moe/gated-shared-moe.js";
import { RoutedMoE, routedMoeForward } from "../../src/moe/routed-moe.js";
import { RoutedAndSharedMoE } from "../../src/moe/routed-and-shared-moe.js";
import { normal, prngKey } from "../../src/nn/random.js";
import { useCli, useScratch } from "./cli-harness.js";

const cli = useCli();
const scratch = useScratch("nan");
const KEYS = { emb_dim: 8, moe_mlp_dim: 16, num_experts: 4, num_experts_per_tok: 2, dtype: "float32" };
const cfg = moeConfig(KEYS);
const x = normal(prngKey(1), [1, 4, 8], "float32");

/** A copy of `t` with `value` at flat index `i`. */
function withValue(t: Tensor, i: number, value: number): Tensor {
  const d = Float32Array.from(t.data);
  d[i] = value;
  return new Tensor(d, t.shape, t.dtype);
}

/** What `run` throws: the NonFiniteError's tensor, index and message. */
function refusal(run: () => unknown): { tensor: string; index: readonly number[]; message: string } {
  try {
    run();
  } catch (e) {
    expect(e).toBeInstanceOf(NonFiniteError);
    const { tensor, index, message } = e as NonFiniteError;
    return { tensor, index, message };
  }
  throw new Error("no NonFiniteError");
}

describe("checkFinite(tensorOrTree, name)", () => {
  it("a tensor: its name, dtype, shape and the first bad element", () => {
    expect(refusal(() => checkFinite(withValue(x, 8 + 2, NaN), "x"))).toEqual({
      tensor: "x",
      index: [0, 1, 2],
      message: "[x] float32[1,4,8] holds NaN at [0,1,2]",
    });
  });

  it("a tree of tensors: the path of the bad one", () => {
    const tree = { a: x, b: { c: [x, withValue(x, 31, -Infinity)] }, skipped: 3 };
    expect(refusal(() => checkFinite(tree, "tree")).message).toBe("[tree b/c/1] float32[1,4,8] holds -Infinity at [0,3,7]");
  });

  it("finite tensors pass", () => {
    expect(() => checkFinite({ a: x, b: [x] }, "tree")).not.toThrow();
  });

  it("checkpoint storage: an e4m3fn NaN code (0x7f, 0xff) or an e8m0 NaN scale (0xff) names the weight", () => {
    const bytes = (...b: number[]): Tensor => new Tensor(Uint8Array.from(b), [b.length], "uint8");
    const f32 = new Tensor(Float32Array.of(1), [1], "float32");
    const fp8 = (codes: Tensor) => ({ format: "fp8_e4m3", shape: [1, 2, 2], codes, scales: f32 });
    expect(() => checkFinite({ wo: fp8(bytes(0x7e, 0x80, 0xfe, 0x00)) }, "layer")).not.toThrow();
    expect(refusal(() => checkFinite({ wo: fp8(bytes(0x7e, 0xff, 0x7f, 0x00)) }, "layer")).message).toBe(
      "[layer wo/codes] uint8[4] holds the NaN code 0xff at storage index 1",
    );
    const mxfp4 = (scales: Tensor) => ({ format: "mxfp4", shape: [1, 32, 1], codes: bytes(...new Array<number>(16).fill(0x77)), scales });
    expect(() => checkFinite({ wi0: mxfp4(bytes(0xfe)) }, "layer")).not.toThrow();
    expect(refusal(() => checkFinite({ wi0: mxfp4(bytes(0xff)) }, "layer")).message).toBe(
      "[layer wi0/scales] uint8[1] holds the NaN code 0xff at storage index 0",
    );
  });
});

describe("forward(x, { checkFinite: true })", () => {
  const layer = new RoutedMoE(cfg, { key: prngKey(0) });
  const nanWi0 = { ...layer.weights, wi0: withValue(layer.weights.wi0, 3 * 8 * 16 + 5, NaN) };

  it("a NaN in an expert weight names it; without the option it runs through to the output", () => {
    expect(refusal(() => routedMoeForward(cfg, nanWi0, x, { checkFinite: true })).message).toBe(
      "[RoutedMoE weights/wi0] float32[4,8,16] holds NaN at [3,0,5]",
    );
    // the default path does not scan: the NaN reaches the output of the tokens routed to expert 3
    const o = routedMoeForward(cfg, nanWi0, x);
    expect(Array.from(o.output.data).some(Number.isNaN)).toBe(Array.from(o.topKIndices_BSK.data).includes(3));
  });

  it("a NaN in the input and in gate_inputs are named as such", () => {
    expect(refusal(() => layer.forward(withValue(x, 0, NaN), { checkFinite: true })).tensor).toBe("RoutedMoE input");
    expect(refusal(() => layer.forward(x, { gateInputs: withValue(x, 0, Infinity), checkFinite: true })).tensor).toBe(
      "RoutedMoE gate_inputs",
    );
  });

  it("finite operands whose experts overflow: the output is named", () => {
    const big = (t: Tensor): Tensor => new Tensor(new Float32Array(t.size).fill(1e20), t.shape, t.dtype);
    const w = { ...layer.weights, wi0: big(layer.weights.wi0), wi1: big(layer.weights.wi1) };
    expect(refusal(() => routedMoeForward(cfg, w, x, { checkFinite: true })).tensor).toBe("RoutedMoE output");
  });

  it("RoutedAndSharedMoE names a shared-expert kernel", () => {
    const shared = new RoutedAndSharedMoE(moeConfig({ ...KEYS, shared_experts: 1, decoder_block: "deepseek" }), { key: prngKey(0) });
    const [p, kernel] = shared.sharedExperts.parameters()[0]!;
    shared.loadParameters({ [`shared_experts/${p}`]: withValue(kernel, 0, NaN) });
    expect(refusal(() => shared.forward(x, { checkFinite: true })).message).toMatch(
      new RegExp(`^\\[RoutedAndSharedMoE shared_experts ${p}\\] float32\\[8,16\\] holds NaN at \\[0,0\\]$`),
    );
  });

  it("GatedSharedMoE names the shared expert gate", () => {
    const gated = new GatedSharedMoE(cfg, { key: prngKey(0) });
    gated.sharedExpertGate = withValue(gated.sharedExpertGate, 7, NaN);
    expect(refusal(() => gated.forward(x, { checkFinite: true })).message).toBe(
      "[GatedSharedMoE shared_expert_gate] float32[8,1] holds NaN at [7,0]",
    );
  });
});

describe("moekit run names a NaN weight or input: exit 2, one line", () => {
  let ckpt: string;
  beforeAll(async () => {
    ckpt = scratch("ckpt");
    expect((await cli("init", "--preset", "tiny-qwen3-30b-a3b", "--format", "hf", "--family", "qwen3_moe", ckpt)).code).toBe(0);
  });

  it("an expert weight with a NaN (HF expert 3's gate_proj [5,7] is wi_0 [3,7,5])", async () => {
    const dir = scratch("nan-ckpt");
    fs.cpSync(ckpt, dir, { recursive: true });
    const file = path.join(dir, "model.safetensors");
    const tensors = loadSafetensors(file);
    const name = "model.layers.0.mlp.experts.3.gate_proj.weight";
    tensors[name] = withValue(tensors[name]!, 5 * 32 + 7, NaN);
    saveSafetensors(file, tensors, { overwrite: true });
    const r = await cli("run", "--checkpoint", dir);
    expect([r.code, r.err.split("\n").at(-1)]).toEqual([
      2,
      `moekit run: [--checkpoint ${dir} layer 0 wi_0] float32[8,32,48] holds NaN at [3,7,5]`,
    ]);
  });

  it("an --input with an Inf", async () => {
    const input = path.join(path.dirname(ckpt), "inf.safetensors");
    saveSafetensors(input, { input: withValue(normal(prngKey(2), [1, 3, 32], "float32"), 40, Infinity) });
    const r = await cli("run", "--checkpoint", ckpt, "--input", input);
    expect([r.code, r.err.split("\n").at(-1)]).toEqual([2, `moekit run: [--input ${input}] float32[1,3,32] holds Infinity at [0,1,8]`]);
  });
});

describe("the memory budget in the API's forward and the gated-shared constructor", () => {
  afterEach(() => setMemoryBudget(undefined));

  it("GatedSharedMoE refuses a layer over the budget before allocating (its shared MLP and gate included)", () => {
    setMemoryBudget(1000);
    expect(() => new GatedSharedMoE(cfg, { key: prngKey(0) })).toThrow(/^\[GatedSharedMoE\] needs about [\d.]+ kB \(weights /);
  });

  it("forward refuses an input whose activations are over the budget", () => {
    const layer = new RoutedMoE(cfg, { key: prngKey(0) });
    setMemoryBudget(10_000);
    expect(() => layer.forward(normal(prngKey(3), [4, 64, 8], "float32"))).toThrow(
      /^\[RoutedMoE\.forward\] needs about [\d.]+ kB \(activations [\d.]+ kB, input [\d.]+ kB\), over the memory budget of 10\.0 kB \(setMemoryBudget\(\)\)/,
    );
    expect(layer.forward(x).output.shape).toEqual([1, 4, 8]);
  });
});
