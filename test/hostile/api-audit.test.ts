// Findings of an audit of the public API from a user's side (the README, docs and .d.ts only): each test is the
// audit's reproduction, as it failed before its fix.
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DTypeError, MoeError } from "../../src/core/errors.js";
import { full, Tensor, tensor, zeros } from "../../src/core/tensor.js";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { concatenate } from "../../src/ops/movement.js";
import { matmul } from "../../src/ops/matmul.js";
import { sum } from "../../src/ops/reduce.js";
import { moeConfig, MOE_DEFAULTS } from "../../src/moe/config.js";
import { getPreset, listPresets, presetConfig } from "../../src/moe/presets.js";
import { RoutedMoE } from "../../src/moe/routed-moe.js";
import { UnsupportedModelError } from "../../src/checkpoint/layer.js";
import { readHfMoeLayer, writeHfMoeLayer } from "../../src/checkpoint/hf-layout.js";
import { writeMaxTextMoeLayer } from "../../src/checkpoint/maxtext-layout.js";
import { normal, prngKey, uniform } from "../../src/nn/random.js";
import { makeFixture, writeFixture } from "../checkpoint/fixtures.js";
import { testBackends, withBackend } from "../harness/backends.js";
import { useScratch } from "./cli-harness.js";
import { quantizeMoeLayer } from "../../src/checkpoint/quantized-layer.js";
import { useBackend } from "../../src/backends/select.js";
import { jit } from "../../src/backends/jit.js";
import { nativeBackend, setNativeThreads } from "../../src/backends/native/index.js";
import { readNpy, writeNpy } from "../../src/io/npy.js";
import { saveSafetensors } from "../../src/io/safetensors.js";
import { saveShardedSafetensors } from "../../src/io/sharded.js";
import { runMpi } from "../../src/parallel/mpi-launch.js";

const scratch = useScratch("api-audit");
const small = { num_experts: 4, num_experts_per_tok: 2, emb_dim: 16, moe_mlp_dim: 16, dtype: "float32" };

describe("values written into a tensor's data", () => {
  it.each(testBackends())("%s: a bfloat16 weight zeroed through .data, then Tensor.rewritten, is zero for the forward", async (be) => {
    await withBackend(be, () => {
      const moe = new RoutedMoE(moeConfig({ ...small, weight_dtype: "bfloat16" }), { key: prngKey(0) });
      const x = normal(prngKey(1), [2, 4, 16]);
      expect(Math.max(...moe.forward(x).output.toArray().map(Math.abs))).toBeGreaterThan(0);
      (moe.weights.wo.data as Float32Array).fill(0);
      Tensor.rewritten([moe.weights.wo]);
      // native read the bf16 bits it had made (or loaded) before: the old weights
      expect(Math.max(...moe.forward(x).output.toArray().map(Math.abs))).toBe(0);
    });
  });

  it("Tensor.rewritten rounds a bfloat16 tensor's new values to bfloat16, in its bits too", () => {
    const t = new Tensor(new Uint16Array([0x3f80, 0x4000]), [2], "bfloat16"); // 1, 2
    (t.data as Float32Array).set([1.00390625, -3]); // 1 + 2^-8: halfway between bf16 neighbours, rounds to even (1)
    Tensor.rewritten([t]);
    expect(t.toArray()).toEqual([1, -3]);
    expect(Array.from(t.bf16Bits!)).toEqual([0x3f80, 0xc040]);
  });
});

describe("the library's tables", () => {
  it("presets and MOE_DEFAULTS are frozen: a user's change to one changed every later config", () => {
    const preset = getPreset("tiny-mixtral-8x7b");
    expect(() => ((preset.keys as Record<string, unknown>).num_experts = 2)).toThrow(TypeError);
    expect(() => ((MOE_DEFAULTS as Record<string, unknown>).num_experts = 99)).toThrow(TypeError);
    expect(() => (MOE_DEFAULTS.mlp_activations as string[]).push("gelu")).toThrow(TypeError);
    expect(() => (listPresets() as unknown[]).splice(0)).toThrow(TypeError);
    expect(presetConfig("tiny-mixtral-8x7b").numExperts).toBe(8);
    expect(moeConfig({}).numExperts).toBe(1);
    expect(listPresets().length).toBeGreaterThan(40);
  });
});

describe("integer dtypes", () => {
  it("tensor() and full() refuse values the dtype cannot hold (int8 300 became 44, a fraction was truncated)", () => {
    expect(() => tensor([1.7, -3.2, 300], [3], "int8")).toThrow(new DTypeError("[tensor] int8 cannot hold 1.7 (element 0)"));
    expect(() => tensor([3, 300], [2], "int8")).toThrow("[tensor] int8 cannot hold 300 (element 1)");
    expect(() => tensor([-3], [1], "uint8")).toThrow("[tensor] uint8 cannot hold -3 (element 0)");
    expect(() => tensor([2 ** 31], [1], "int32")).toThrow("[tensor] int32 cannot hold 2147483648 (element 0)");
    expect(() => full([2], 1.5, "int32")).toThrow("[full] int32 cannot hold 1.5");
    expect(() => full([2], 300, "int8")).toThrow("[full] int8 cannot hold 300");
    expect(tensor([-128, 127], [2], "int8").toArray()).toEqual([-128, 127]);
    expect(tensor([0, 255], [2], "uint8").toArray()).toEqual([0, 255]);
    expect(full([2], -7, "int32").toArray()).toEqual([-7, -7]);
  });

  it("random draws refuse an integer dtype (normal gave zeros, uniform floored)", () => {
    expect(() => normal(prngKey(0), [4], "int32")).toThrow("[normal] dtype int32: draws need float32, float64 or bfloat16");
    expect(() => uniform(prngKey(0), [4], 0, 10, "int8")).toThrow("[uniform] dtype int8");
  });

  it("new Tensor refuses storage of another dtype (an int32 tensor over a Float32Array indexed with fractions)", () => {
    expect(() => new Tensor(new Float32Array([0.9, 1.2]), [2], "int32")).toThrow(
      new DTypeError("[tensor] dtype int32 is stored in Int32Array, got Float32Array"),
    );
    expect(() => new Tensor(new Int32Array(2), [2], "float32")).toThrow(DTypeError);
    expect(new Tensor(new Float32Array(2), [2], "bfloat16").dtype).toBe("bfloat16");
    expect(new Tensor(new Uint16Array(2), [2], "bfloat16").dtype).toBe("bfloat16");
  });

  it("a dtype string that is none of them is named (it failed reading BYTES_PER_ELEMENT)", () => {
    const msg = '[tensor] dtype "f32" is not one of float32, float64, bfloat16, int32, int8, uint8';
    expect(() => zeros([2], "f32" as never)).toThrow(new DTypeError(msg));
    expect(() => tensor([1], [1], "float16" as never)).toThrow(DTypeError);
    expect(() => normal(prngKey(0), [2], "float" as never)).toThrow(DTypeError);
  });
});

describe("a typed array or a plain array where a Tensor goes (JavaScript callers)", () => {
  const t = tensor([1, 2, 3, 4], [2, 2]);
  it("the layer's forward names its input", () => {
    const moe = new RoutedMoE(moeConfig(small), { key: prngKey(0) });
    expect(() => moe.forward(new Float64Array(32) as never)).toThrow(
      new MoeError("[RoutedMoE] the input is a Float64Array, not a Tensor (make one with tensor(values, shape, dtype))"),
    );
    expect(() => moe.forward([[[1, 2]]] as never)).toThrow("[RoutedMoE] the input is an Array, not a Tensor");
  });

  it("ops name the argument (they failed with a TypeError reading its shape)", () => {
    expect(() => sum([1, 2, 3] as never)).toThrow("[sum] argument 0 is an Array, not a Tensor");
    expect(() => matmul(t, new Float32Array(4) as never)).toThrow("[matmul] argument 1 is a Float32Array, not a Tensor");
    expect(() => concatenate([t, new Float32Array(4) as never])).toThrow(
      "[concatenate] element 1 of argument 0 is a Float32Array, not a Tensor",
    );
    expect(() => sum(Object.create(null) as never)).toThrow("[sum] argument 0 is an Object, not a Tensor");
    expect(() => sum(null as never)).toThrow("[sum] argument 0 is null, not a Tensor");
  });

  it("valueAndGrad names the argument (it failed with 't.sameStorage is not a function')", () => {
    expect(() => valueAndGrad((x: Tensor) => sum(x))(new Float32Array(2) as never)).toThrow(
      "[grad] argument 0 is not a Tensor: got Float32Array",
    );
  });
});

describe("loading parameters", () => {
  it("refuses a value that is no Tensor", () => {
    const moe = new RoutedMoE(moeConfig(small), { key: prngKey(0) });
    expect(() => moe.loadParameters({ wi_0: new Float32Array(4 * 16 * 16) as never })).toThrow(
      '[params] "wi_0" is a Float32Array, not a Tensor',
    );
    const wi0 = zeros([4, 16, 16]);
    moe.loadParameters({ wi_0: wi0 });
    expect(moe.weights.wi0).toBe(wi0);
  });
});

describe("checkpoints", () => {
  it("a layer index out of range is a bad argument, not an unsupported model", () => {
    const dir = writeFixture(makeFixture("mixtral"), scratch("hf"));
    for (const layer of [3, 0.5, -1]) {
      let e: unknown;
      try {
        readHfMoeLayer(dir, layer);
      } catch (err) {
        e = err;
      }
      expect(e).toBeInstanceOf(MoeError);
      expect(e).not.toBeInstanceOf(UnsupportedModelError);
      expect(String(e)).toMatch(`[checkpoint] layer ${layer} is ${layer === 0.5 ? "not an integer" : "out of range"}: layers are 0 to `);
    }
  });
});

describe("a second audit: io, checkpoint, optim, parallel and runtime", () => {
  it("quantizeMoeLayer keeps the overrides the layer was read with (it computed in the stored dtype again)", () => {
    const dir = writeFixture(makeFixture("mixtral"), scratch("hf-overrides"));
    const layer = readHfMoeLayer(dir, 0, { overrides: { dtype: "float64" } });
    expect(layer.config.dtype).toBe("float64");
    const q = quantizeMoeLayer(layer, "int8");
    expect(q.config.dtype).toBe("float64");
    expect(quantizeMoeLayer(layer, "int4", { dtype: "bfloat16" }).config.dtype).toBe("bfloat16");
  });

  it('useBackend refuses a name that is no backend ("Ref" and "cuda" ran native)', () => {
    for (const name of ["cuda", "Ref", ""])
      expect(() => useBackend(name as never)).toThrow(`[backend] ${JSON.stringify(name)} is not a backend: give "auto", "native", "ref"`);
    expect(useBackend("ref")).toBe("ref");
  });

  it("readNpy keeps uint8 / int8 codes with the dtype option, as loadSafetensors does", () => {
    const file = join(mkdirSync(scratch("npy"), { recursive: true })!, "codes.npy");
    writeNpy(file, tensor([0, 200, 255], [3], "uint8"));
    const t = readNpy(file, { dtype: "uint8" });
    expect([t.dtype, t.toArray()]).toEqual(["uint8", [0, 200, 255]]);
    expect(() => readNpy(file, { dtype: "int8" })).toThrow("U8 values cannot be read as int8 codes");
  });

  it("runMpi names a misspelled option; jit names an argument that is no Tensor", () => {
    return Promise.all([
      expect(runMpi(1, "x.mjs", undefined, { timeout: 1 } as never)).rejects.toThrow(/runMpi.*timeout.*timeoutMs/),
      expect(() => jit((x: Tensor) => x)(3 as never)).toThrow("[jit] argument 0 is not a Tensor: got Number"),
    ]);
  });

  it.skipIf(nativeBackend() === undefined)("setNativeThreads' refusals are MoeErrors naming the range", () => {
    for (const n of [-1, 1.5, 1e6])
      expect(() => setNativeThreads(n)).toThrow(
        new MoeError(`[native] thread count ${n} must be an integer from 0 (the number of CPUs) to 1024`),
      );
  });

  it("writers name the user's folder and the real reason", () => {
    const dir = scratch("sharded");
    expect(() => saveShardedSafetensors(dir, { a: tensor([1], [1]) }, { maxShardBytes: 0 })).toThrow(
      `[safetensors] ${dir}: maxShardBytes 0`,
    );
    // the checkpoint writers too (they named their temporary folder)
    const layer = readHfMoeLayer(writeFixture(makeFixture("mixtral"), scratch("hf-shards")), 0);
    const out = scratch("maxtext-shards");
    expect(() => writeMaxTextMoeLayer(layer, out, { maxShardBytes: 0 })).toThrow(
      `[checkpoint] ${out}: maxShardBytes 0 is not a positive number`,
    );
    expect(() => writeHfMoeLayer(layer, out, { family: "mixtral", maxShardBytes: -5 })).toThrow(`[checkpoint] ${out}: maxShardBytes -5`);
    const file = join(mkdirSync(scratch("f8"), { recursive: true })!, "x.safetensors");
    expect(() => saveSafetensors(file, { x: tensor([1], [1]) }, { dtypes: { x: "F8_E4M3" } })).toThrow(
      "cannot be stored as F8_E4M3: it holds e4m3 codes, from a uint8 tensor",
    );
  });
});

describe("a third audit: today's MPI changes", () => {
  it("moekit run refuses dropout on a shared-expert layer once, before --ranks starts ranks (each printed it, then MPI's abort)", () => {
    const bin = join(import.meta.dirname, "../../bin/moekit.js");
    const r = spawnSync(process.execPath, [bin, "run", "--preset", "tiny-deepseek3-671b", "--set", "dropout_rate=0.1", "--ranks", "2"], {
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(
      "moekit run: [config] dropout_rate=0.1: moekit run runs an inference forward, where MaxText applies no dropout: set it to 0",
    );
  });
});
