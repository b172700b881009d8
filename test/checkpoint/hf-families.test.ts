// Every supported family: a tiny HF checkpoint (unsharded and sharded) is read, run in float64, and compared
// with a per-token loop written from the family's published modelling code on the HF tensors; then saved
// back (HF -> HF, HF -> MaxText -> HF) and compared byte for byte.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SafetensorsCheckpoint } from "../../src/io/index.js";
import { Tensor } from "../../src/core/tensor.js";
import {
  moeLayerForward,
  readHfMoeLayer,
  readMaxTextMoeLayer,
  writeHfMoeLayer,
  writeMaxTextMoeLayer,
  type MoeLayer,
} from "../../src/checkpoint/index.js";
import { RoutedMoE } from "../../src/moe/routed-moe.js";
import { RoutedAndSharedMoE } from "../../src/moe/routed-and-shared-moe.js";
import { GatedSharedMoE } from "../../src/moe/gated-shared-moe.js";
import type { Module } from "../../src/nn/module.js";
import { DIMS, makeFixture, makeInput, relError, writeFixture, type Fixture, type Storage } from "./fixtures.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "moekit-hf-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;
const tmp = (name: string): string => path.join(root, `${n++}-${name}`);

const F64 = { dtype: "float64", weight_dtype: "float64" };
const TOL = 1e-9;

interface Case {
  family: string;
  variant?: string;
  storage?: Storage;
  module: MoeLayer["module"];
}

const CASES: Case[] = [
  { family: "mixtral", module: "routed" },
  { family: "mixtral", storage: "BF16", module: "routed" },
  { family: "qwen2_moe", module: "gated_shared" },
  { family: "qwen2_moe", variant: "norm", module: "gated_shared" },
  { family: "qwen3_moe", module: "routed" },
  { family: "qwen3_moe", variant: "norm", module: "routed" },
  { family: "qwen3_next", module: "gated_shared" },
  { family: "olmoe", module: "routed" },
  { family: "olmoe", variant: "norm", module: "routed" },
  { family: "deepseek_v2", module: "routed_and_shared" },
  { family: "deepseek_v2", variant: "group_limited_greedy", module: "routed_and_shared" },
  { family: "deepseek_v3", module: "routed_and_shared" },
  { family: "deepseek_v3", variant: "no_norm", module: "routed_and_shared" },
  { family: "deepseek_v3", variant: "transformers5", module: "routed_and_shared" },
  { family: "deepseek_v3", storage: "BF16", module: "routed_and_shared" },
  { family: "gpt_oss", module: "routed" },
  { family: "gpt_oss", storage: "BF16", module: "routed" },
  { family: "llama4", module: "routed_and_shared" },
  { family: "granitemoe", module: "routed" },
  { family: "granitemoeshared", module: "routed_and_shared" },
];

/** The layer's moekit module built from its parameters (checks the pure forward against the modules). */
function moduleOf(layer: MoeLayer): Module & { forward(x: Tensor): { output: Tensor } } {
  const m =
    layer.module === "routed"
      ? new RoutedMoE(layer.config)
      : layer.module === "routed_and_shared"
        ? new RoutedAndSharedMoE(layer.config)
        : new GatedSharedMoE(layer.config, { sharedDim: layer.sharedDim });
  m.loadParameters(layer.params);
  return m;
}

/** Every tensor of `names` has identical bytes, dtype and shape in both checkpoints. */
function expectSameBytes(a: string, b: string, names: string[]): void {
  const ca = SafetensorsCheckpoint.open(a);
  const cb = SafetensorsCheckpoint.open(b);
  try {
    for (const name of names) {
      const ra = ca.getRaw(name);
      const rb = cb.getRaw(name);
      expect(rb.dtype, name).toBe(ra.dtype);
      expect(rb.shape, name).toEqual(ra.shape);
      expect(Buffer.from(rb.bytes).equals(Buffer.from(ra.bytes)), name).toBe(true);
    }
  } finally {
    ca.close();
    cb.close();
  }
}

function layerTensorNames(fx: Fixture, written: string): string[] {
  const c = SafetensorsCheckpoint.open(written);
  const names = c.keys();
  c.close();
  for (const name of names) expect(fx.tensors[name], `${name} is one of the original tensors`).toBeDefined();
  return names;
}

describe.each(CASES)("HF $family $variant $storage", (c) => {
  const fx = makeFixture(c.family, { variant: c.variant, storage: c.storage });
  const { rows, x } = makeInput(2, 3, DIMS.D);
  const expected = fx.reference(rows);

  it.each([
    ["unsharded", undefined],
    ["sharded", 3000],
  ] as const)("%s: loads the layer and matches the reference loop to 1e-9", (_, maxShardBytes) => {
    const dir = writeFixture(fx, tmp(c.family), { maxShardBytes });
    if (maxShardBytes !== undefined) expect(fs.readdirSync(dir).filter((f) => f.endsWith(".safetensors")).length).toBeGreaterThan(2);
    const layer = readHfMoeLayer(dir, fx.layer, { overrides: F64 });
    expect(layer.module).toBe(c.module);
    expect(layer.layer).toBe(fx.layer);
    const out = moeLayerForward(layer, x);
    expect(out.output.dtype).toBe("float64");
    expect(relError(out.output.data, expected)).toBeLessThan(TOL);
    // the pure forward equals the moekit module holding the same parameters
    const viaModule = moduleOf(layer).forward(x).output;
    expect(relError(viaModule.data, [Array.from(out.output.data)])).toBe(0);
  });

  it("defaults to the first MoE layer and keeps the stored precision", () => {
    const dir = writeFixture(fx, tmp(c.family));
    const layer = readHfMoeLayer(dir);
    expect(layer.layer).toBe(fx.firstMoe);
    const want = c.storage === "BF16" ? "bfloat16" : "float32";
    const gate = Object.entries(layer.params).find(([p]) => p.endsWith("gate/kernel"))![1];
    expect(gate.dtype).toBe(want);
    // BF16 tensors arrive as their bits, moved (not widened) through the layout transforms
    for (const [p, t] of Object.entries(layer.params)) {
      if (t.dtype !== "bfloat16") continue;
      expect(t.bf16Bits, p).toBeDefined();
      expect(t.materialized, p).toBe(false);
    }
  });

  it("HF -> HF and HF -> MaxText -> HF are bit-exact; MaxText reads back the same layer", () => {
    const dir = writeFixture(fx, tmp(c.family), { maxShardBytes: 5000 });
    const layer = readHfMoeLayer(dir, fx.layer);

    const hf2 = tmp("hf2");
    writeHfMoeLayer(layer, hf2);
    const names = layerTensorNames(fx, hf2);
    expectSameBytes(dir, hf2, names);
    expect(JSON.parse(fs.readFileSync(path.join(hf2, "config.json"), "utf8"))).toEqual(fx.config);

    const mt = tmp("maxtext.safetensors");
    writeMaxTextMoeLayer(layer, mt);
    const back = readMaxTextMoeLayer(mt);
    expect(back.module).toBe(layer.module);
    expect(back.keys).toEqual(layer.keys);
    expect(Object.keys(back.params).sort()).toEqual(Object.keys(layer.params).sort());
    for (const [p, t] of Object.entries(layer.params)) {
      expect(back.params[p]!.dtype, p).toBe(t.dtype);
      expect(Array.from(back.params[p]!.data), p).toEqual(Array.from(t.data));
    }
    const hf3 = tmp("hf3");
    writeHfMoeLayer(back, hf3, { maxShardBytes: 4000 });
    expectSameBytes(dir, hf3, layerTensorNames(fx, hf3));

    // and the MaxText copy computes the same output
    const a = moeLayerForward(readHfMoeLayer(dir, fx.layer, { overrides: F64 }), x).output;
    const b = moeLayerForward(readMaxTextMoeLayer(mt, { overrides: F64 }), x).output;
    expect(Array.from(b.data)).toEqual(Array.from(a.data));
  });
});

describe("HF layouts beyond the legacy per-expert one", () => {
  it("reads transformers v5 fused experts (mlp.experts.gate_up_proj [E,2H,D], down_proj [E,D,H]) for Mixtral", () => {
    const fx = makeFixture("mixtral");
    const { rows, x } = makeInput(1, 5, DIMS.D);
    const { E, D, H } = DIMS;
    const dir = writeFixture(fx, tmp("fused"), {
      edit: (tensors, storage) => {
        for (let l = 0; l < DIMS.L; l++) {
          const P = `model.layers.${l}.block_sparse_moe`;
          const gu = new Float32Array(E * 2 * H * D);
          const dn = new Float32Array(E * D * H);
          for (let e = 0; e < E; e++) {
            gu.set(tensors[`${P}.experts.${e}.w1.weight`]!.data, e * 2 * H * D);
            gu.set(tensors[`${P}.experts.${e}.w3.weight`]!.data, e * 2 * H * D + H * D);
            dn.set(tensors[`${P}.experts.${e}.w2.weight`]!.data, e * D * H);
            for (const w of ["w1", "w2", "w3"]) delete tensors[`${P}.experts.${e}.${w}.weight`];
          }
          const Q = `model.layers.${l}.mlp`;
          tensors[`${Q}.gate.weight`] = tensors[`${P}.gate.weight`]!;
          delete tensors[`${P}.gate.weight`];
          tensors[`${Q}.experts.gate_up_proj`] = new Tensor(gu, [E, 2 * H, D], "float32");
          tensors[`${Q}.experts.down_proj`] = new Tensor(dn, [E, D, H], "float32");
          for (const n of [`${Q}.gate.weight`, `${Q}.experts.gate_up_proj`, `${Q}.experts.down_proj`]) storage[n] = "F32";
        }
      },
    });
    const layer = readHfMoeLayer(dir, 1, { overrides: F64 });
    expect(layer.hf?.expertLayout).toBe("fused");
    expect(relError(moeLayerForward(layer, x).output.data, fx.reference(rows))).toBeLessThan(TOL);
    const again = tmp("fused2");
    writeHfMoeLayer(readHfMoeLayer(dir, 1), again);
    expectSameBytes(dir, again, [
      "model.layers.1.mlp.gate.weight",
      "model.layers.1.mlp.experts.gate_up_proj",
      "model.layers.1.mlp.experts.down_proj",
    ]);
  });
});
