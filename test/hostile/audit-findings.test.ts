// Findings of a new-user audit (the README, docs and --help only), each once silent or a raw TypeError: MaxText's
// base_* keys, a whole model YAML, {key: undefined}, NaN in messages, an undefined operand, --ranks checked before
// mpirun, --help beside a flag missing its value.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../src/core/errors.js";
import { tensor, zeros, type Tensor } from "../../src/core/tensor.js";
import { grad, valueAndGrad, vjp } from "../../src/autodiff/grad.js";
import { customVjp } from "../../src/autodiff/custom-vjp.js";
import { noGrad } from "../../src/autodiff/graph.js";
import { mul } from "../../src/ops/elementwise.js";
import { sum } from "../../src/ops/reduce.js";
import { AdamW, SGD } from "../../src/optim/optimizers.js";
import { jit } from "../../src/backends/jit.js";
import { testBackends, withBackend } from "../harness/backends.js";
import { moeConfig, MOE_DEFAULTS } from "../../src/moe/config.js";
import { presetConfig } from "../../src/moe/presets.js";
import { RoutedMoE, routedMoeForward } from "../../src/moe/routed-moe.js";
import { normal, prngKey } from "../../src/nn/random.js";
import { add } from "../../src/ops/elementwise.js";
import { readMaxTextMoeLayer } from "../../src/checkpoint/maxtext-layout.js";
import { readHfMoeLayer } from "../../src/checkpoint/hf-layout.js";
import { makeFixture, writeFixture } from "../checkpoint/fixtures.js";
import { useCli, useScratch } from "./cli-harness.js";

const cli = useCli();
const scratch = useScratch("audit-findings");

// the shape of MaxText's configs/models/*.yml: base_* sizes beside keys of other layers
const MODEL_YAML = `base_emb_dim: 64
base_num_query_heads: 4
base_mlp_dim: 128
base_moe_mlp_dim: 32
base_num_decoder_layers: 4
vocab_size: 32000
num_experts: 8
num_experts_per_tok: 2
decoder_block: "mixtral"
`;

describe("MaxText's base_* keys", () => {
  it("stand for emb_dim, mlp_dim and moe_mlp_dim, as pyconfig derives them at global_parameter_scale 1", () => {
    const c = moeConfig({ base_emb_dim: 64, base_mlp_dim: 128, base_moe_mlp_dim: 32, global_parameter_scale: 1, num_experts: 8 });
    expect([c.embDim, c.mlpDim, c.moeMlpDim, c.expertInputDim]).toEqual([64, 128, 32, 64]);
    expect(moeConfig({ baseEmbDim: 64, num_experts: 8 }).embDim).toBe(64);
    expect(moeConfig({ base_emb_dim: 64, emb_dim: 64 }).embDim).toBe(64);
  });

  it("refuse another global_parameter_scale; a base key sets its size over the size key, as pyconfig (a preset resized)", () => {
    expect(() => moeConfig({ base_emb_dim: 64, global_parameter_scale: 2 })).toThrow(
      "[config] global_parameter_scale=2: only 1 (MaxText's default) is supported",
    );
    expect(moeConfig({ base_emb_dim: 64, emb_dim: 32 }).embDim).toBe(64);
    expect(moeConfig({ base_moe_mlp_dim: 24, moeMlpDim: 32 }).moeMlpDim).toBe(24);
    expect(presetConfig("tiny-mixtral-8x7b", { base_emb_dim: 64 }).embDim).toBe(64);
    // a preset's overrides: camelCase replaces the snake_case key, undefined leaves the preset's value
    const p = presetConfig("tiny-mixtral-8x7b", { embDim: 48, dtype: undefined, num_experts: undefined });
    expect([p.embDim, p.dtype, p.numExperts]).toEqual([48, "float32", 8]);
    expect(moeConfig({ emb_dim: 16, base_emb_dim: undefined, global_parameter_scale: undefined }).embDim).toBe(16);
  });

  it("camelCase keys with a digit map back to theirs (use2dFsdpSharding)", () => {
    expect(moeConfig({ use2dFsdpSharding: true }).use2dFsdpSharding).toBe(true);
  });
});

describe("config values", () => {
  it("a key set to undefined takes its default, as a JavaScript option does", () => {
    expect(moeConfig({ num_experts: 8, dtype: undefined }).dtype).toBe(MOE_DEFAULTS.dtype);
  });

  it("NaN and Infinity are printed as themselves, not as JSON's null", () => {
    expect(() => moeConfig({ capacity_factor: NaN })).toThrow("[config] capacity_factor=NaN: must be finite");
    expect(() => moeConfig({ capacity_factor: -Infinity })).toThrow("[config] capacity_factor=-Infinity: must be finite");
    expect(() => moeConfig({ capacity_factor: NaN })).toThrow(ConfigError);
  });
});

it("an undefined operand names the op and the operand (ops.add(loss, o.lbLoss) without a load-balance loss)", () => {
  expect(() => add(zeros([2], "float32"), undefined as never)).toThrow("[add] operand 1 is undefined, not a Tensor or a number");
  expect(() => add(null as never, 1)).toThrow("[add] operand 0 is null, not a Tensor or a number");
});

const hfDir = (): string => writeFixture(makeFixture("mixtral"), scratch("hf"));

describe("checkpoints", () => {
  const hf = hfDir();
  it("readMaxTextMoeLayer on a Hugging Face folder says which reader it needs, not --config", () => {
    expect(() => readMaxTextMoeLayer(hf)).toThrow("a Hugging Face checkpoint folder (it holds config.json): read it with readHfMoeLayer");
  });
  it("a shape that an override changes names the override, not config.json alone", () => {
    expect(() => readHfMoeLayer(hf, 0, { overrides: { num_experts: 2 } })).toThrow(
      /but config\.json with the overrides \(num_experts\) implies/,
    );
  });
});

describe("a quantized layer's non-finite operand", () => {
  it("is named as the operand of its product, with its index, not as element N of 'the input'", () => {
    for (const sparse of [false, true]) {
      const cfg = moeConfig({
        num_experts: 4,
        num_experts_per_tok: 2,
        emb_dim: 8,
        moe_mlp_dim: 6,
        quantization: "int8",
        sparse_matmul: sparse,
      });
      const w = new RoutedMoE(cfg).weights;
      const d = Float32Array.from(w.wi0.data);
      d[(1 * 8 + 2) * 6 + 5] = NaN;
      const x = normal(prngKey(1), [2, 4, 8], "bfloat16");
      expect(() => routedMoeForward(cfg, { ...w, wi0: tensor(d, [4, 8, 6], w.wi0.dtype) }, x)).toThrow(
        sparse
          ? "[quantize] the weights of a grouped matmul [4,8,6] is NaN at [1,2,5]: abs-max scales need finite values"
          : "[quantize] the rhs of BSM,EMH->BSEH [4,8,6] is NaN at [1,2,5]: abs-max scales need finite values",
      );
    }
  });
});

describe("moekit run", () => {
  it("--skip-other-keys runs a whole MaxText model YAML and lists what it skipped; without it the error says so", async () => {
    const file = scratch("model.yml");
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, MODEL_YAML);
    const refused = await cli("run", "--config", file);
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/base_num_query_heads=4: is not a MoE config key \(a whole MaxText model YAML: .*--skip-other-keys\)/);
    const r = await cli("run", "--config", file, "--skip-other-keys", "--json");
    expect(r.code).toBe(0);
    expect(r.err).toContain("skipping 3 keys the MoE layer does not read: base_num_query_heads, base_num_decoder_layers, vocab_size");
    expect((JSON.parse(r.out) as { input: number[] }).input).toEqual([2, 8, 64]);
    expect((await cli("run", "--preset", "tiny-mixtral-8x7b", "--skip-other-keys")).err).toContain(
      "--skip-other-keys goes with --config FILE",
    );
  });

  it("reads a config as YAML 1.1, as MaxText's PyYAML does: 1_024 is a number, yes a boolean; one key skipped is one key", async () => {
    const file = scratch("yaml11.yml");
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(
      file,
      "base_emb_dim: 1_024\nbase_moe_mlp_dim: 32\nnum_experts: 4\nnum_experts_per_tok: 2\nsparse_matmul: no\ncheckpoint_period: 10_000\n",
    );
    const r = await cli("run", "--config", file, "--skip-other-keys");
    expect(r.code).toBe(0);
    expect(r.err).toContain("skipping 1 key the MoE layer does not read: checkpoint_period");
    expect(r.err).toMatch(/initialising .*yaml11.yml \(RoutedMoE, E=4, K=2, D=1024, H=32, dense\)/);
  });

  it("a base_* size that is not an integer is named as the key given, not the size it stands for", () => {
    expect(() => moeConfig({ base_emb_dim: "abc" })).toThrow('[config] base_emb_dim="abc": must be an integer');
    expect(() => moeConfig({ baseMoeMlpDim: 1.5 })).toThrow("[config] baseMoeMlpDim=1.5: must be an integer");
  });

  it("--ranks that does not divide the batch or the experts is refused before mpirun starts, once", async () => {
    const r = await cli("run", "--preset", "tiny-mixtral-8x7b", "--ranks", "3");
    expect(r.code).toBe(2);
    expect(r.err.trim()).toBe("moekit run: [run] --batch 2 must be divisible by --ranks 3 (each rank runs B/3 rows)");
    const e = await cli("run", "--preset", "tiny-mixtral-8x7b", "--batch", "6", "--ranks", "3");
    expect(e.err.trim()).toBe("moekit run: [run] num_experts=8 must be divisible by --ranks 3 (each rank holds E/3 experts)");
  });

  it("says which keys it was given but does not read (as MaxText ignores them)", async () => {
    const r = await cli(
      "run",
      "--preset",
      "tiny-mixtral-8x7b",
      "--set",
      "capacity_factor=1.0",
      "--set",
      "n_routing_groups=2",
      "--set",
      "topk_routing_group=1",
    );
    expect(r.code).toBe(0);
    expect(r.err).toContain("note: capacity_factor=1 drops no tokens on the sparse path (sparse_matmul=true is dropless)");
    expect(r.err).toContain('note: n_routing_groups=2 is read by deepseek3 model names (model_name="mixtral-8x7b")');
    expect(
      (await cli("run", "--preset", "tiny-mixtral-8x7b", "--set", "sparse_matmul=false", "--set", "capacity_factor=1.0")).err,
    ).not.toContain("note:");
  });

  it("--family with a MaxText-layout checkpoint is refused, not ignored", async () => {
    const mt = scratch("mt.safetensors");
    expect((await cli("convert", "--from", "hf", "--to", "maxtext", hfDir(), mt)).code).toBe(0);
    const r = await cli("run", "--checkpoint", mt, "--family", "qwen3_moe");
    expect(r.code).toBe(2);
    expect(r.err).toContain("family qwen3_moe is for Hugging Face checkpoints; this is the MaxText layout");
  });

  it("a served int4 checkpoint refuses an override of the bits it computes with", async () => {
    const mt = scratch("mt.safetensors");
    const q = scratch("q.safetensors");
    expect((await cli("convert", "--from", "hf", "--to", "maxtext", hfDir(), mt)).code).toBe(0);
    expect((await cli("quantize", "--mode", "int4", mt, q)).code).toBe(0);
    const r = await cli("run", "--checkpoint", q, "--set", 'quant_cfg={"__default__":{"w_bits":8}}');
    expect(r.code).toBe(2);
    expect(r.err).toContain(
      "the experts are stored as int4, but the config computes intmp with w_bits 8: keep the stored quantization keys",
    );
    expect((await cli("run", "--checkpoint", q, "--set", "dtype=float64")).code).toBe(0);
  });

  it("--help wins over a flag left without its value", async () => {
    const r = await cli("run", "--checkpoint", "--help");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Usage: moekit run --checkpoint PATH/);
  });

  it("--max-params names a tiny twin only where one exists", async () => {
    expect((await cli("run", "--preset", "mixtral-8x7b")).err).toContain("try the tiny-mixtral-8x7b preset");
    expect((await cli("run", "--preset", "tiny-mixtral-8x7b", "--max-params", "10")).err).toContain("raise --max-params");
  });
});

describe("training API, from an autodiff audit", () => {
  const x = tensor([1, 2], [2], "float64");
  const cube = (z: Tensor): Tensor => sum(mul(mul(z, z), z));

  it("a higher-order gradient is refused (the outer gradient came back zero)", () => {
    expect(() => valueAndGrad((y: Tensor) => sum(grad(cube)(y)[0]!))(x)).toThrow("[grad] higher-order gradients");
    expect(grad(cube)(x)[0]!.toArray()).toEqual([3, 12]);
  });

  it("not higher-order: a gradient at a finished forward's outputs, chained vjps, a gradient inside noGrad or a customVjp", () => {
    const { value } = valueAndGrad(cube)(x);
    expect(grad((v: Tensor) => mul(v, v))(value)[0]!.item()).toBe(2 * value.item());
    const s1 = vjp((a: Tensor) => [mul(a, a)], x);
    const s2 = vjp((h: Tensor) => [sum(mul(h, 3))], s1.outputs[0]!);
    expect(s1.pullback(s2.pullback([tensor(1, [], "float64")]))[0]!.toArray()).toEqual([6, 12]);
    expect(noGrad(() => grad(cube)(x))[0]!.toArray()).toEqual([3, 12]);
    const remat = customVjp(
      (a: Tensor) => ({ out: cube(a), res: a }),
      (a: Tensor, ct: Tensor) => [mul(vjp((z: Tensor) => [cube(z)], a).pullback([ct])[0]!, 1)],
    );
    expect(grad(remat)(x)[0]!.toArray()).toEqual([3, 12]);
  });

  it("customVjp checks the shapes its backward returns", () => {
    const f = customVjp(
      (a: Tensor) => ({ out: sum(a), res: undefined }),
      () => [tensor([1, 1, 1], [3], "float64")],
    );
    expect(() => valueAndGrad(f)(x)).toThrow("[customVjp] the backward's cotangent 0 is [3], its input [2]");
  });

  it("an undefined cotangent in a pullback is zero", () => {
    const { pullback } = vjp((a: Tensor) => [mul(a, 2), mul(a, 3)], x);
    expect(pullback([undefined, tensor([1, 1], [2], "float64")])[0]!.toArray()).toEqual([3, 3]);
    expect(pullback([undefined, undefined])[0]!.toArray()).toEqual([0, 0]);
  });

  it("AdamW: a skipped parameter keeps its own step count (its first update is lr·sign(g)); jit refuses the step", () => {
    const a = tensor([1, 1], [2], "float32");
    const b = tensor([1, 1], [2], "float32");
    const opt = new AdamW([a, b], { learningRate: 0.1, weightDecay: 0 });
    opt.step([tensor([1, -1], [2], "float32"), undefined]);
    opt.step([tensor([1, -1], [2], "float32"), tensor([1, -1], [2], "float32")]);
    expect(Array.from(b.data, (v) => Math.round((1 - v) * 1e5) / 1e5)).toEqual([0.1, -0.1]);
    const g = tensor([1, -1], [2], "float32");
    expect(() => jit(() => opt.step([g, g]))()).toThrow("[jit] AdamW.step computes its bias correction from its step count");
  });

  it("an optimizer given a parameter as its own gradient updates it on every backend", () => {
    for (const backend of testBackends()) {
      const p = tensor([1, 2, 3], [3], "float32");
      withBackend(backend, () => new SGD([p], { learningRate: 0.1 }).step([p]));
      expect(Array.from(p.data)).toEqual([0.9, 1.8, 2.7].map(Math.fround));
    }
  });
});

it("jit replays a layer with loss-free bias updates (it was refused: the updates were read in JavaScript)", () => {
  const cfg = moeConfig({
    decoder_block: "deepseek",
    model_name: "deepseek3-x",
    num_experts: 8,
    num_experts_per_tok: 2,
    emb_dim: 16,
    moe_mlp_dim: 8,
    routed_score_func: "sigmoid",
    routed_bias: true,
    routed_bias_update_rate: 0.001,
    n_routing_groups: 2,
    topk_routing_group: 1,
    dtype: "float32",
  });
  const w = new RoutedMoE(cfg, { key: prngKey(1) }).weights;
  const f = jit((x: Tensor) => routedMoeForward(cfg, w, x).biasUpdates!);
  for (let i = 0; i < 3; i++) {
    const x = normal(prngKey(10 + i), [2, 4, 16], "float32");
    expect(Array.from(f(x).data)).toEqual(Array.from(routedMoeForward(cfg, w, x).biasUpdates!.data));
  }
});

it("SGD steps under jit with the gradient an argument; parameters given as each other's gradients read them before any update", () => {
  const p = tensor([1, 2, 3], [3], "float32");
  const sgd = new SGD([p], { learningRate: 0.5 });
  const step = jit((g: Tensor) => {
    sgd.step([g]);
    return g;
  });
  for (let i = 0; i < 3; i++) step(tensor([1, 1, 1], [3], "float32"));
  expect(Array.from(p.data)).toEqual([-0.5, 0.5, 1.5]);
  const a = tensor([1], [1], "float32");
  const b = tensor([2], [1], "float32");
  new SGD([a, b], { learningRate: 0.5 }).step([b, a]);
  expect([a.data[0], b.data[0]]).toEqual([0, 1.5]);
});
