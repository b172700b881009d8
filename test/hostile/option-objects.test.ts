// Hostile inputs, item "no silently ignored input": a misspelled option was its default without a word
// (forward(x, {checkfinite: true}) skipped the scan; readHfMoeLayer(dir, 0, {override: ...}) read the stored dtype),
// and a raw object of MaxText keys where a config belongs read as NaN sizes.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MoeError } from "../../src/core/errors.js";
import { zeros } from "../../src/core/tensor.js";
import { foldIn, normal, prngKey } from "../../src/nn/random.js";
import { moeConfig, type MoeConfig } from "../../src/moe/config.js";
import { RoutedMoE } from "../../src/moe/routed-moe.js";
import { RoutedAndSharedMoE } from "../../src/moe/routed-and-shared-moe.js";
import { GatedSharedMoE, gatedSharedMoeForward } from "../../src/moe/gated-shared-moe.js";
import { AdamW, SGD } from "../../src/optim/optimizers.js";
import { openMoeLayer } from "../../src/checkpoint/open.js";
import { readHfMoeLayer, writeHfMoeLayer } from "../../src/checkpoint/hf-layout.js";
import { readMaxTextMoeLayer, writeMaxTextMoeLayer } from "../../src/checkpoint/maxtext-layout.js";
import { makeFixture, writeFixture } from "../checkpoint/fixtures.js";
import { loadSafetensors, SafetensorsFile, saveSafetensors, writeNpy } from "../../src/io/index.js";
import { hfConfigToMaxText } from "../../src/checkpoint/hf-config.js";

const keys = { num_experts: 4, num_experts_per_tok: 2, emb_dim: 8, moe_mlp_dim: 4, dtype: "float32" };
const cfg = moeConfig(keys);
const x = zeros([1, 2, 8], "float32");
const root = fs.mkdtempSync(path.join(os.tmpdir(), "moekit-options-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe("an option the function does not have is refused by name, with the closest one", () => {
  const moe = new RoutedMoE(cfg);
  it("forward", () => {
    expect(() => moe.forward(x, { checkfinite: true } as never)).toThrow(
      "[RoutedMoE.forward] unknown option checkfinite (did you mean checkFinite?)",
    );
    expect(() => moe.forward(x, null as never)).toThrow("[RoutedMoE.forward] options must be an object, got null");
    expect(moe.forward(x, { checkFinite: true }).output.shape).toEqual([1, 2, 8]);
  });

  it("optimizers", () => {
    const p = [zeros([2], "float32")];
    expect(() => new AdamW(p, { learningRate: 0.1, weight_decay: 0 } as never)).toThrow(
      "[adamw] unknown option weight_decay (did you mean weightDecay?)",
    );
    expect(() => new SGD(p, { learningRate: 0.1, momentom: 0.9 } as never)).toThrow(
      "[sgd] unknown option momentom (did you mean momentum?)",
    );
  });

  it("moeConfig", () => {
    expect(() => moeConfig(keys, { Strict: false } as never)).toThrow("[moeConfig] unknown option Strict (did you mean strict?)");
    expect(() => moeConfig(null as never)).toThrow("[moeConfig] the config must be an object of MaxText keys");
    expect(() => moeConfig("num_experts: 4" as never)).toThrow("(parseMoeConfig reads YAML text), got string");
  });

  it("checkpoint readers and writers", () => {
    const hf = writeFixture(makeFixture("mixtral"), path.join(root, "hf"));
    expect(() => readHfMoeLayer(hf, 0, { override: { dtype: "float64" } } as never)).toThrow(
      "[readHfMoeLayer] unknown option override (did you mean overrides?)",
    );
    const layer = readHfMoeLayer(hf, 0, { overrides: { dtype: "float64" } });
    expect(layer.config.dtype).toBe("float64");
    const mt = path.join(root, "layer.safetensors");
    expect(() => writeMaxTextMoeLayer(layer, mt, { maxShardByte: 10 } as never)).toThrow(
      "[writeMaxTextMoeLayer] unknown option maxShardByte (did you mean maxShardBytes?)",
    );
    writeMaxTextMoeLayer(layer, mt);
    expect(() => readMaxTextMoeLayer(mt, { override: { dtype: "float64" } } as never)).toThrow(
      "[readMaxTextMoeLayer] unknown option override (did you mean overrides?)",
    );
    expect(() => openMoeLayer(mt, undefined, { fromat: "hf" } as never)).toThrow(
      "[openMoeLayer] unknown option fromat (did you mean format?)",
    );
    expect(openMoeLayer(mt, undefined, { overrides: { dtype: "float32" } }).config.dtype).toBe("float32");
    expect(openMoeLayer(hf, 0, { overrides: { dtype: "float32" }, format: "hf", family: "mixtral" }).config.dtype).toBe("float32");
    expect(() => writeHfMoeLayer(layer, path.join(root, "hf2"), { familly: "mixtral" } as never)).toThrow(
      "[writeHfMoeLayer] unknown option familly (did you mean family?)",
    );
  });
});

describe("a layer needs a config made by moeConfig, not a raw object of MaxText keys", () => {
  it.each([
    ["RoutedMoE", (c: MoeConfig) => new RoutedMoE(c)],
    ["RoutedAndSharedMoE", (c: MoeConfig) => new RoutedAndSharedMoE(c)],
    ["GatedSharedMoE", (c: MoeConfig) => new GatedSharedMoE(c)],
  ])("%s", (name, make) => {
    expect(() => make(keys as never)).toThrow(MoeError);
    expect(() => make(keys as never)).toThrow(`[${name}] needs a config made by moeConfig({...MaxText keys})`);
  });
});

describe("constructors and io take only their options", () => {
  it("layers, io readers and writers, hfConfigToMaxText", () => {
    const root2 = fs.mkdtempSync(path.join(os.tmpdir(), "moekit-options2-"));
    try {
      expect(() => new RoutedMoE(cfg, { intermediate_dim: 8 } as never)).toThrow(
        "[RoutedMoE] unknown option intermediate_dim (did you mean intermediateDim?)",
      );
      expect(
        () => new RoutedAndSharedMoE(moeConfig({ ...keys, shared_experts: 1, decoder_block: "deepseek" }), { keys: 1 } as never),
      ).toThrow("[RoutedAndSharedMoE] unknown option keys (did you mean key?)");
      expect(() => new GatedSharedMoE(cfg, { shared_dim: 4 } as never)).toThrow(
        "[GatedSharedMoE] unknown option shared_dim (did you mean sharedDim?)",
      );
      const f = path.join(root2, "t.safetensors");
      expect(() => saveSafetensors(f, { a: zeros([2], "float32") }, { overwirte: true } as never)).toThrow(
        "[saveSafetensors] unknown option overwirte (did you mean overwrite?)",
      );
      saveSafetensors(f, { a: zeros([2], "float32") });
      expect(() => loadSafetensors(f, { dtpye: "float64" } as never)).toThrow(
        "[loadSafetensors] unknown option dtpye (did you mean dtype?)",
      );
      const file = SafetensorsFile.open(f);
      try {
        expect(() => file.get("a", { dtpye: "float64" } as never)).toThrow(
          "[SafetensorsFile.get] unknown option dtpye (did you mean dtype?)",
        );
        expect(file.get("a", { dtype: "float64" }).dtype).toBe("float64");
      } finally {
        file.close();
      }
      expect(() => writeNpy(path.join(root2, "a.npy"), zeros([2], "float32"), { descrs: "<f4" } as never)).toThrow(
        "[writeNpy] unknown option descrs",
      );
      expect(() => hfConfigToMaxText({}, { famly: "mixtral" } as never)).toThrow(
        "[hfConfigToMaxText] unknown option famly (did you mean family?)",
      );
    } finally {
      fs.rmSync(root2, { recursive: true, force: true });
    }
  });
});

it("a key that is not a PRNG key is refused, named (a number or a fraction read as another key, silently)", () => {
  const moe = new RoutedMoE(moeConfig({ num_experts: 4, num_experts_per_tok: 2, emb_dim: 8, moe_mlp_dim: 6, quantization: "int8" }));
  const x = zeros([1, 2, 8], "bfloat16");
  for (const [bad, shown] of [
    [5, "5"],
    [null, "null"],
    ["abc", '"abc"'],
    [{}, "[object Object]"],
    [[1.5, 2], "[1.5, 2]"],
    [[2 ** 32 + 1, 0], "[4294967297, 0]"],
    [[1, 2, 3], "[1, 2, 3]"],
  ] as const)
    expect(() => moe.forward(x, { quantKey: bad as never })).toThrow(
      `[RoutedMoE.forward] quantKey must be a PRNG key (prngKey(seed), split, foldIn: two uint32 words), got ${shown}`,
    );
  expect(() => moe.forward(x, { rng: 7 as never })).toThrow("[RoutedMoE.forward] rng must be a PRNG key");
  expect(() => new RoutedMoE(moeConfig({ num_experts: 4, num_experts_per_tok: 2 }), { key: 3 as never })).toThrow(
    "[RoutedMoE] key must be a PRNG key",
  );
  expect(() => foldIn("k" as never, 1)).toThrow(
    '[foldIn] key must be a PRNG key (prngKey(seed), split, foldIn: two uint32 words), got "k"',
  );
  expect(() => normal([0, 0.5] as never, [2])).toThrow("[normal] key must be a PRNG key");
  expect(moe.forward(x, { quantKey: prngKey(5) }).output.shape).toEqual([1, 2, 8]);
});

it("GatedSharedMoE's weights: an extra field or a shared kernel of another activation count is refused", () => {
  const moe = new GatedSharedMoE(cfg);
  const x2 = zeros([1, 2, 8], "float32");
  const w = {
    routed: moe.routedExperts.weights,
    shared: Object.fromEntries(moe.sharedExpert.parameters()),
    gateKernel: moe.sharedExpertGate,
  };
  expect(gatedSharedMoeForward(cfg, w, x2).output.shape).toEqual([1, 2, 8]);
  expect(() => gatedSharedMoeForward(cfg, { ...w, gate: moe.sharedExpertGate } as never, x2)).toThrow(
    "[GatedSharedMoE weights] unknown field gate (fields: routed, shared, gateKernel)",
  );
  expect(() => gatedSharedMoeForward(cfg, { ...w, shared: { ...w.shared, "wi_2/kernel": moe.sharedExpertGate } }, x2)).toThrow(
    "[mlp] unknown kernel wi_2/kernel",
  );
});
