// Finite differences of the whole layer (float64) against reverse mode, on several configs.
import { describe, expect, it } from "vitest";
import type { Tensor } from "../../src/core/tensor.js";
import { add, mul } from "../../src/ops/elementwise.js";
import { sum } from "../../src/ops/reduce.js";
import { routedMoeForward, type RoutedMoeWeights } from "../../src/moe/routed-moe.js";
import { RoutedAndSharedMoE, routedAndSharedMoeForward } from "../../src/moe/routed-and-shared-moe.js";
import { normal, prngKey } from "../../src/nn/random.js";
import { gradcheck } from "../harness/gradcheck.js";
import { cfg64, randomInput, randomWeights, ROUTING_CONFIGS, type Dims } from "./setup.js";

const dims: Dims = { B: 1, S: 3, D: 4, H: 3 };
const KEYS = ["gateKernel", "gateBias", "wi0", "wi1", "wo", "wi0Bias", "wi1Bias", "woBias", "perExpertScale"] as const;

const CASES: [string, Record<string, unknown>][] = [
  ["sparse mixtral + lb_loss", { ...ROUTING_CONFIGS.mixtral_softmax, load_balance_loss_weight: 0.05 }],
  ["sparse deepseek3 groups + lb_loss", { ...ROUTING_CONFIGS.deepseek3_groups, load_balance_loss_weight: 0.05 }],
  ["sparse gpt_oss clamps + biases", ROUTING_CONFIGS.gpt_oss_bias_clamp!],
  ["sparse gemma4 per-expert scale", ROUTING_CONFIGS.gemma4_gelu_scale!],
  ["dense llama4", { ...ROUTING_CONFIGS.llama4_top1, sparse_matmul: false }],
  [
    "dense capacity dropping (training)",
    {
      decoder_block: "mixtral",
      num_experts: 3,
      num_experts_per_tok: 2,
      sparse_matmul: false,
      capacity_factor: 0.7,
      load_balance_loss_weight: 0.05,
    },
  ],
  [
    "dense inference sub-groups",
    {
      decoder_block: "mixtral",
      num_experts: 3,
      num_experts_per_tok: 2,
      sparse_matmul: false,
      capacity_factor: 1,
      model_call_mode: "inference",
      ici_context_autoregressive_parallelism: 3,
    },
  ],
];

describe.each(CASES)("finite differences of the whole layer: %s", (_name, keys) => {
  const cfg = cfg64(keys);
  const w = randomWeights(cfg, dims, 11);
  const x = randomInput(cfg, dims, 12);
  const ct = normal(prngKey(13), [dims.B, dims.S, dims.D], "float64");
  const names = KEYS.filter((k) => w[k] !== undefined);

  it("reverse mode matches central differences for x and every weight", () => {
    const f = (xx: Tensor, ...ws: Tensor[]): Tensor => {
      const ww = Object.fromEntries(names.map((n, i) => [n, ws[i]!])) as unknown as RoutedMoeWeights;
      const o = routedMoeForward(cfg, ww, xx);
      const obj = sum(mul(o.output, ct));
      return o.lbLoss === undefined ? obj : add(obj, o.lbLoss);
    };
    const r = gradcheck(f, [x, ...names.map((n) => w[n]!)], { stencil: 4, eps: 1e-4 });
    expect(r.checked).toBeGreaterThan(50);
    expect(r.maxRelErr, JSON.stringify(r.worst)).toBeLessThan(1e-6);
  });
});

describe("finite differences: RoutedAndSharedMoE (DeepSeek-V2 style, shared experts)", () => {
  it("shared MLP kernels and input", () => {
    const cfg = cfg64({ ...ROUTING_CONFIGS.deepseek2_softmax_scale, emb_dim: 4, moe_mlp_dim: 3, shared_experts: 2 });
    const layer = new RoutedAndSharedMoE(cfg, { key: prngKey(3) });
    const x = randomInput(cfg, dims, 14);
    const paths = layer.sharedExperts.parameters().map(([p]) => p);
    const f = (xx: Tensor, ...ks: Tensor[]): Tensor => {
      layer.sharedExperts.loadParameters(Object.fromEntries(paths.map((p, i) => [p, ks[i]!])));
      return sum(mul(layer.forward(xx).output, layer.forward(xx).output));
    };
    const r = gradcheck(f, [x, ...layer.sharedExperts.parameters().map(([, t]) => t)], { stencil: 4, eps: 1e-4 });
    expect(r.maxRelErr, JSON.stringify(r.worst)).toBeLessThan(1e-6);
  });
});

describe("routedAndSharedMoeForward: RoutedAndSharedMoE as a pure function of its weights", () => {
  const cfg = cfg64({ ...ROUTING_CONFIGS.deepseek2_softmax_scale, emb_dim: 4, moe_mlp_dim: 3, shared_experts: 2 });
  const layer = new RoutedAndSharedMoE(cfg, { key: prngKey(3) });
  const x = randomInput(cfg, dims, 14);
  it("gives the module's output bit for bit", () => {
    expect(routedAndSharedMoeForward(cfg, layer.weights, x).output.data).toEqual(layer.forward(x).output.data);
  });
  it("differentiates through every weight, the shared kernels' and the routed ones' (finite differences)", () => {
    const w = layer.weights;
    const paths = Object.keys(w.shared);
    const f = (xx: Tensor, gate: Tensor, wi0: Tensor, ...ks: Tensor[]): Tensor => {
      const routed = { ...w.routed, gateKernel: gate, wi0 };
      const o = routedAndSharedMoeForward(cfg, { routed, shared: Object.fromEntries(paths.map((p, i) => [p, ks[i]!])) }, xx).output;
      return sum(mul(o, o));
    };
    const shared = paths.map((p) => w.shared[p] as Tensor);
    const r = gradcheck(f, [x, w.routed.gateKernel, w.routed.wi0, ...shared], { stencil: 4, eps: 1e-4 });
    expect(r.maxRelErr, JSON.stringify(r.worst)).toBeLessThan(1e-6);
  });
  it("names a misspelled or missing field of its weights, and the shared kernel that is wrong", () => {
    const w = layer.weights;
    expect(() => routedAndSharedMoeForward(cfg, { ...w, sharde: {} } as never, x)).toThrow(/sharde/);
    expect(() => routedAndSharedMoeForward(cfg, { routed: w.routed } as never, x)).toThrow(
      "[RoutedAndSharedMoE] weights.shared is missing",
    );
    const wo = w.shared["wo/kernel"] as Tensor;
    const [Hs, D] = wo.shape;
    const transposed = { ...w.shared, "wo/kernel": normal(prngKey(1), [D!, Hs!], "float64") };
    expect(() => routedAndSharedMoeForward(cfg, { ...w, shared: transposed }, x)).toThrow(
      `[mlp] kernel wo/kernel is [${D},${Hs}], expected [${Hs},${D}]`,
    );
    const typed = { ...w.shared, "wi_0/kernel": new Float32Array(4) as never };
    expect(() => routedAndSharedMoeForward(cfg, { ...w, shared: typed }, x)).toThrow(
      "[mlp] kernel wi_0/kernel is a Float32Array, not a Tensor",
    );
  });
});
