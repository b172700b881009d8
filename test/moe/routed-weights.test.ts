import { describe, expect, it } from "vitest";
import { ConfigError, ShapeError } from "../../src/core/errors.js";
import { zeros, type Tensor } from "../../src/core/tensor.js";
import type { MoeConfig } from "../../src/moe/config.js";
import { routedMoeForward, type RoutedMoeWeights } from "../../src/moe/routed-moe.js";
import { normal, prngKey } from "../../src/nn/random.js";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { sum } from "../../src/ops/reduce.js";
import { cfg64, randomInput, randomWeights, ROUTING_CONFIGS, type Dims } from "./setup.js";

const dims: Dims = { B: 2, S: 3, D: 5, H: 4 };
const base = { num_experts: 4, num_experts_per_tok: 2 };
const cfg = cfg64(base);
const w = randomWeights(cfg, dims, 3);
const x = randomInput(cfg, dims, 4);
const run =
  (ww: unknown, c = cfg, xx: Tensor = x) =>
  () =>
    routedMoeForward(c, ww as RoutedMoeWeights, xx);
const t = (shape: number[]) => normal(prngKey(7), shape, "float64");

describe("a forward refuses weights its config cannot use as given", () => {
  it("a gate kernel for another number of experts", () => {
    for (const E of [3, 5]) expect(run({ ...w, gateKernel: t([5, E]) })).toThrow(/gateKernel .*\[5,3\]|gateKernel .*\[5,5\]/);
    expect(run({ ...w, gateKernel: t([5, 5]) })).toThrow(/expected \[D,4\] for num_experts=4/);
  });

  it("names the weight whose size disagrees with the others, not its neighbour or the input", () => {
    expect(run({ ...w, wi0: t([4, 5, 3]) })).toThrow(/wi0 is \[4,5,3\]: its hidden width H is 3, where wi1, wo have 4/);
    expect(run({ ...w, wo: t([4, 4, 6]) })).toThrow(/wo is \[4,4,6\]: its model dim D is 6/);
    expect(run({ ...w, gateKernel: t([6, 4]) })).toThrow(/gateKernel is \[6,4\]: its model dim D is 6/);
    expect(run({ ...w, wi1: t([3, 5, 4]) })).toThrow(/wi1 \(MaxText wi_1\) is \[3,5,4\].*E = num_experts = 4/);
    expect(run(w, cfg, t([2, 3, 6]))).toThrow(/input \[2,3,6\] must be \[B,S,5\]/);
  });

  it("a missing or misspelled weight", () => {
    const { wo: _, ...noWo } = w;
    expect(run(noWo)).toThrow(ShapeError);
    expect(run(noWo)).toThrow(/missing weight wo/);
    expect(run({ ...noWo, Wo: w.wo })).toThrow(/unknown weight Wo \(did you mean wo\?\)/);
    expect(run({ ...w, wi_0: w.wi0 })).toThrow(/unknown weight wi_0 \(did you mean wi0\?\)/);
    expect(run({ ...w, wo: "wo" })).toThrow(/weight wo must be a Tensor or a quantized weight, got string/);
    expect(run(null)).toThrow(/must be an object of tensors, got null/);
  });

  it("a bias the config does not use, or one it needs and lacks", () => {
    const biased = cfg64({ ...base, mlp_bias: true });
    const wb = randomWeights(biased, dims, 3);
    expect(run({ ...w, wi0Bias: wb.wi0Bias })).toThrow(ConfigError);
    expect(run({ ...w, wi0Bias: wb.wi0Bias })).toThrow(/mlp_bias=false: the weights hold wi0Bias/);
    expect(run({ ...wb, woBias: undefined }, biased)).toThrow(/mlp_bias=true: needs the weight woBias/);
    expect(run({ ...wb, wi1Bias: t([4, 3]) }, biased)).toThrow(/wi1Bias is \[4,3\]: its hidden width H is 3/);
    expect(run({ ...w, gateBias: zeros([4], "float64") })).toThrow(/routed_bias=false: the weights hold gateBias/);
    const routed = cfg64({ ...base, routed_bias: true });
    for (const shape of [[], [1, 4], [3]])
      expect(run({ ...w, gateBias: zeros(shape, "float64") }, routed)).toThrow(/gateBias \(MaxText gate\/bias\) is .*, expected \[4\]/);
    expect(run({ ...w, perExpertScale: zeros([4], "float64") })).toThrow(/decoder_block="\w+": the weights hold perExpertScale/);
  });

  it("weights that fit still run, and undefined optional fields are absent ones", () => {
    expect(run({ ...w, gateBias: undefined, wi0Bias: undefined })().output.shape).toEqual([2, 3, 5]);
  });
});

describe.each(Object.entries(ROUTING_CONFIGS))("an empty batch or sequence: %s", (_name, keys) => {
  for (const path of [
    { sparse_matmul: true },
    { sparse_matmul: false },
    { sparse_matmul: false, capacity_factor: 1 },
    { sparse_matmul: false, capacity_factor: 1, model_call_mode: "inference" },
  ])
    it(`keeps [B,S,D] and gives gradients of the weights' shapes (${JSON.stringify(path)})`, () => {
      let c: MoeConfig;
      try {
        c = cfg64({ ...keys, ...path });
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError); // a combination the config refuses (PARITY.md)
        return;
      }
      const ww = randomWeights(c, dims, 3);
      for (const shape of [
        [0, 3, 5],
        [2, 0, 5],
      ]) {
        const xx = zeros(shape, "float64");
        expect(routedMoeForward(c, ww, xx).output.shape).toEqual(shape);
        const loss = (x: Tensor, wi0: Tensor, wo: Tensor): Tensor => sum(routedMoeForward(c, { ...ww, wi0, wo }, x).output);
        const { value, grads } = valueAndGrad(loss)(xx, ww.wi0, ww.wo);
        expect(value.item()).toBe(0);
        expect(grads.map((g) => g.shape)).toEqual([shape, ww.wi0.shape, ww.wo.shape]);
        expect(grads.slice(1).every((g) => Array.from(g.data).every((v) => v === 0))).toBe(true);
      }
    });
});
