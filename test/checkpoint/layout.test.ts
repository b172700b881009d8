// Reading exactly one layer, lazily; malformed checkpoints are refused with messages that say what is wrong.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Tensor } from "../../src/core/tensor.js";
import { CheckpointError, SafetensorsCheckpoint, saveSafetensors, type ReadOptions } from "../../src/io/index.js";
import {
  CheckpointLayoutError,
  UnsupportedModelError,
  maxTextBlockPrefix,
  moeLayerForward,
  readHfMoeLayer,
  readMaxTextMoeLayer,
  writeHfMoeLayer,
  writeMaxTextMoeLayer,
  type TensorSource,
} from "../../src/checkpoint/index.js";
import { DIMS, makeFixture, makeInput, relError, writeFixture } from "./fixtures.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "moekit-layout-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;
const tmp = (name: string): string => path.join(root, `${n++}-${name}`);

/** A SafetensorsCheckpoint that records which tensors' data were read. */
class CountingSource implements TensorSource {
  readonly read: string[] = [];
  bytes = 0;
  constructor(readonly inner: SafetensorsCheckpoint) {}
  keys(): string[] {
    return this.inner.keys();
  }
  has(name: string): boolean {
    return this.inner.has(name);
  }
  info(name: string): ReturnType<SafetensorsCheckpoint["info"]> {
    return this.inner.info(name);
  }
  get(name: string, options?: ReadOptions): Tensor {
    this.read.push(name);
    const i = this.inner.info(name);
    this.bytes += i.dataOffsets[1] - i.dataOffsets[0];
    return this.inner.get(name, options);
  }
  close(): void {
    this.inner.close();
  }
  get metadata(): Readonly<Record<string, unknown>> {
    return this.inner.metadata;
  }
}

describe("lazy reading: memory proportional to the layer", () => {
  it("reads only the requested layer's MoE tensors, and opens only the shards that hold them", () => {
    const fx = makeFixture("deepseek_v3");
    const dir = writeFixture(fx, tmp("ds3"), { maxShardBytes: 2500 });
    const ckpt = SafetensorsCheckpoint.open(dir);
    const src = new CountingSource(ckpt);
    const layer = readHfMoeLayer(dir, 2, { source: src });
    const prefix = "model.layers.2.mlp.";
    expect(src.read.length).toBeGreaterThan(0);
    for (const name of src.read) expect(name.startsWith(prefix), name).toBe(true);
    const layerNames = Object.keys(fx.tensors).filter((k) => k.startsWith(prefix));
    expect(new Set(src.read)).toEqual(new Set(layerNames));
    const layerBytes = layerNames.reduce((a, k) => a + ckpt.info(k).dataOffsets[1] - ckpt.info(k).dataOffsets[0], 0);
    expect(src.bytes).toBe(layerBytes);
    const holding = new Set(layerNames.map((k) => ckpt.shardOf(k)));
    for (const s of ckpt.openShards) expect(holding.has(s), s).toBe(true);
    const allShards = fs.readdirSync(dir).filter((f) => f.endsWith(".safetensors")).length;
    expect(ckpt.openShards.length).toBeLessThan(allShards);
    expect(Object.values(layer.params).reduce((a, t) => a + t.size, 0) * 4).toBe(layerBytes);
    ckpt.close();
  });
});

describe("malformed Hugging Face checkpoints", () => {
  const fx = makeFixture("mixtral");
  const P = "model.layers.1.block_sparse_moe";

  it("no config.json / invalid JSON", () => {
    const dir = tmp("noconfig");
    fs.mkdirSync(dir);
    expect(() => readHfMoeLayer(dir, 1)).toThrow(/config.json: does not exist; a Hugging Face checkpoint is a directory with config.json/);
    fs.writeFileSync(path.join(dir, "config.json"), "{ nope");
    expect(() => readHfMoeLayer(dir, 1)).toThrow(/not valid JSON/);
  });

  it("a missing expert tensor is named, with the per-expert pattern", () => {
    const dir = writeFixture(fx, tmp("missing"), { edit: (t) => void delete t[`${P}.experts.2.w3.weight`] });
    expect(() => readHfMoeLayer(dir, 1)).toThrow(CheckpointLayoutError);
    expect(() => readHfMoeLayer(dir, 1)).toThrow(
      /missing tensor model\.layers\.1\.block_sparse_moe\.experts\.2\.w3\.weight \(one per expert: .*experts\.\{e\}\.w3\.weight\)/,
    );
  });

  it("a shape that disagrees with config.json", () => {
    const dir = writeFixture(fx, tmp("shape"), { config: { ...fx.config, intermediate_size: 20 } });
    expect(() => readHfMoeLayer(dir, 1)).toThrow(/experts\.0\.w1\.weight has shape \[24,16\], but config\.json implies \[20,16\]/);
  });

  it("unknown tensors in the block (e.g. quantization scales) are refused", () => {
    const dir = writeFixture(fx, tmp("extra"), {
      edit: (t, s) => (
        (t[`${P}.experts.0.w1.weight_scale_inv`] = new Tensor(new Float32Array(4), [2, 2], "float32")),
        (s[`${P}.experts.0.w1.weight_scale_inv`] = "F32")
      ),
    });
    expect(() => readHfMoeLayer(dir, 1)).toThrow(/does not understand.*weight_scale_inv/);
  });

  it("a layer without a MoE block, a dense layer, a missing layer", () => {
    const ds = makeFixture("deepseek_v2");
    const dir = writeFixture(ds, tmp("dense"));
    expect(() => readHfMoeLayer(dir, 0)).toThrow(/dense MLP layer/);
    expect(() => readHfMoeLayer(dir, 7)).toThrow(/out of range/);
    const gone = writeFixture(fx, tmp("nolayer"), {
      edit: (t) =>
        Object.keys(t)
          .filter((k) => k.startsWith(`${P}.`))
          .forEach((k) => delete t[k]),
    });
    expect(() => readHfMoeLayer(gone, 1)).toThrow(/no MoE block of layer 1 .*tensors of that layer: model\.layers\.1\./);
  });

  it("a truncated shard and an index naming a missing shard are refused by the safetensors reader", () => {
    const dir = writeFixture(fx, tmp("trunc"), { maxShardBytes: 3000 });
    const index = JSON.parse(fs.readFileSync(path.join(dir, "model.safetensors.index.json"), "utf8")) as {
      weight_map: Record<string, string>;
    };
    const shard = path.join(dir, index.weight_map[`${P}.gate.weight`]!);
    fs.truncateSync(shard, fs.statSync(shard).size - 10);
    expect(() => readHfMoeLayer(dir, 1)).toThrow(CheckpointError);
    expect(() => readHfMoeLayer(dir, 1)).toThrow(/truncated/);
    fs.rmSync(shard);
    expect(() => readHfMoeLayer(dir, 1)).toThrow(/does not exist/);
  });

  it("writing into a directory that already holds a checkpoint is refused", () => {
    const dir = writeFixture(fx, tmp("occupied"));
    expect(() => writeHfMoeLayer(readHfMoeLayer(dir, 1), dir)).toThrow(/already exists and holds/);
  });
});

describe("DeepSeek-V3's 0.0 fill is checked on every forward", () => {
  it("refuses tokens whose selected experts have a non-positive biased score", () => {
    const fx = makeFixture("deepseek_v3", { variant: "negative_bias" });
    const dir = writeFixture(fx, tmp("negbias"));
    const layer = readHfMoeLayer(dir, 1, { overrides: { dtype: "float64", weight_dtype: "float64" } });
    const { x } = makeInput(1, 3, DIMS.D);
    expect(() => moeLayerForward(layer, x)).toThrow(UnsupportedModelError);
    expect(() => moeLayerForward(layer, x)).toThrow(/fills experts outside the top 2 groups with 0\.0/);
  });
});

describe("MaxText layout", () => {
  const fx = makeFixture("deepseek_v3");
  const dir = writeFixture(fx, tmp("ds3src"));

  it("names: MaxText's decoder paths, DeepSeek counted from its first MoE layer", () => {
    const layer = readHfMoeLayer(dir, 2);
    const out = tmp("mt");
    const r = writeMaxTextMoeLayer(layer, out, { maxShardBytes: 3000 });
    expect(r.prefix).toBe("decoder/moe_layers_1/DeepSeekMoeBlock_0");
    expect(r.tensorNames).toContain("decoder/moe_layers_1/DeepSeekMoeBlock_0/MoeBlock_0/wi_0");
    expect(r.tensorNames).toContain("decoder/moe_layers_1/DeepSeekMoeBlock_0/shared_experts/wo/kernel");
    expect(r.files.length).toBeGreaterThan(2);
    expect(readMaxTextMoeLayer(out).layer).toBe(2);
    expect(maxTextBlockPrefix("mixtral", "routed", 3)).toBe("decoder/layers_3/MoeBlock_0");
    expect(maxTextBlockPrefix("gpt_oss", "routed", 3)).toBe("decoder/layers_3/GptOssMlp");
    expect(maxTextBlockPrefix("qwen3_moe", "routed", 3)).toBe("decoder/layers_3/moe_block");
    expect(maxTextBlockPrefix("llama4", "routed_and_shared", 3)).toBe("decoder/layers_3/Llama4MoEBlock_0");
    expect(maxTextBlockPrefix("qwen3_next", "gated_shared", 3)).toBe("decoder/layers_3/mlp");
  });

  it("reads MaxText's own flattened names (params-decoder-...) given the keys, module and layer", () => {
    const layer = readHfMoeLayer(dir, 1);
    const tensors: Record<string, Tensor> = {};
    for (const [p, t] of Object.entries(layer.params))
      tensors[`params-decoder-moe_layers_0-DeepSeekMoeBlock_0-${p.replaceAll("/", "-")}`] = t;
    const file = tmp("flat.safetensors");
    saveSafetensors(file, tensors);
    expect(() => readMaxTextMoeLayer(file)).toThrow(/no MaxText config/);
    expect(() => readMaxTextMoeLayer(file, { keys: layer.keys })).toThrow(/no layer index/);
    const back = readMaxTextMoeLayer(file, { keys: layer.keys, layer: 1, firstDenseLayers: 1 });
    expect(back.module).toBe("routed_and_shared");
    const { x } = makeInput(1, 4, DIMS.D);
    const F64 = { dtype: "float64", weight_dtype: "float64" };
    const a = moeLayerForward(readHfMoeLayer(dir, 1, { overrides: F64 }), x).output;
    const b = moeLayerForward(readMaxTextMoeLayer(file, { keys: layer.keys, layer: 1, firstDenseLayers: 1, overrides: F64 }), x).output;
    expect(relError(b.data, [Array.from(a.data)])).toBe(0);
  });

  it("wrong shapes, missing and stray tensors, the wrong layer", () => {
    const layer = readHfMoeLayer(dir, 1);
    const file = tmp("bad.safetensors");
    writeMaxTextMoeLayer(layer, file);
    expect(() => readMaxTextMoeLayer(file, { layer: 2 })).toThrow(/holds layer 1, not layer 2/);
    expect(() => readMaxTextMoeLayer(file, { keys: { ...layer.keys, moe_mlp_dim: 20 } })).toThrow(
      /MoeBlock_0\/wi_0 has shape \[8,16,24\], expected \[8,16,20\]/,
    );
    const p = { ...layer.params };
    delete p["MoeBlock_0/gate/bias"];
    expect(() => writeMaxTextMoeLayer({ ...layer, params: p }, tmp("x.safetensors"))).not.toThrow();
    const missing = tmp("missing.safetensors");
    writeMaxTextMoeLayer({ ...layer, params: p }, missing);
    expect(() => readMaxTextMoeLayer(missing)).toThrow(/missing tensor decoder\/moe_layers_0\/DeepSeekMoeBlock_0\/MoeBlock_0\/gate\/bias/);
    const stray = tmp("stray.safetensors");
    writeMaxTextMoeLayer(
      { ...layer, params: { ...layer.params, "MoeBlock_0/per_expert_scale": layer.params["MoeBlock_0/gate/bias"]! } },
      stray,
    );
    expect(() => readMaxTextMoeLayer(stray)).toThrow(/does not have: .*per_expert_scale/);
  });
});
