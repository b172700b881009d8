// Quantized layers against independent computations: weight-only intmp equals the float layer run on weights
// dequantized here (per column / per (expert, column)); the sparse intmp extension equals the dense path; expert
// parallelism quantizes each rank's local experts.
import { describe, expect, it } from "vitest";
import type { Tensor } from "../../src/core/tensor.js";
import { routedMoeForward, routedMoeForwardParallel, shardWeights, type RoutedMoeWeights } from "../../src/moe/routed-moe.js";
import { runSpmd } from "../../src/parallel/local-group.js";
import { concatenate, sliceAxis } from "../../src/ops/movement.js";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { stopGradient } from "../../src/autodiff/graph.js";
import { mul } from "../../src/ops/elementwise.js";
import { sum } from "../../src/ops/reduce.js";
import { prngKey, type Key } from "../../src/nn/random.js";
import { cfg64, randomInput, randomWeights, scaledError, type Dims } from "./setup.js";
import { dequantize } from "../harness/dequantize.js";

const d: Dims = { B: 2, S: 4, D: 8, H: 6 };
const BASE = { num_experts: 4, num_experts_per_tok: 2, emb_dim: d.D, moe_mlp_dim: d.H, decoder_block: "mixtral" };
const intmp = (bits: number): Record<string, unknown> => ({ quantization: "intmp", quant_cfg: { __default__: { w_bits: bits } } });

const dequantized = (w: RoutedMoeWeights, bits: number): RoutedMoeWeights => ({
  ...w,
  gateKernel: dequantize(w.gateKernel, bits),
  wi0: dequantize(w.wi0, bits),
  wi1: dequantize(w.wi1, bits),
  wo: dequantize(w.wo, bits),
});

describe("quantized layers", () => {
  it.each([8, 4])("intmp w_bits=%i (weight-only) is the float layer on dequantized weights, dense and sparse", (bits) => {
    for (const keys of [{ sparse_matmul: false }, { sparse_matmul: true, megablox: true }, { sparse_matmul: true, megablox: false }]) {
      const float = cfg64({ ...BASE, ...keys });
      const quant = cfg64({ ...BASE, ...keys, ...intmp(bits) });
      const w = randomWeights(float, d);
      const x = randomInput(float, d);
      const got = routedMoeForward(quant, w, x).output;
      const want = routedMoeForward(float, dequantized(w, bits), x).output;
      expect(scaledError(got, want), JSON.stringify(keys)).toBeLessThan(1e-12);
      expect(scaledError(got, routedMoeForward(float, w, x).output)).toBeGreaterThan(1e-6);
    }
  });

  it.each([8, 4])("intmp w_bits=%i: gradients are the float layer's on dequantized weights (QUANTIZATION.md), dense and sparse", (bits) => {
    for (const keys of [{ sparse_matmul: false }, { sparse_matmul: true, megablox: true }]) {
      const float = cfg64({ ...BASE, ...keys });
      const quant = cfg64({ ...BASE, ...keys, ...intmp(bits) });
      const w = randomWeights(float, d);
      const x = randomInput(float, d);
      const ct = randomInput(float, d);
      const grads = (cfg: typeof float, ws: RoutedMoeWeights): Tensor[] =>
        valueAndGrad((xx: Tensor, g: Tensor, a: Tensor, b: Tensor, o: Tensor) =>
          sum(mul(routedMoeForward(cfg, { ...ws, gateKernel: g, wi0: a, wi1: b, wo: o }, xx).output, ct)),
        )(x, ws.gateKernel, ws.wi0, ws.wi1, ws.wo).grads;
      const dq = dequantized(w, bits);
      const got = grads(quant, w);
      const want = grads(float, dq);
      const straight = grads(float, w);
      got.forEach((g, i) => expect(scaledError(g, want[i]!), `${JSON.stringify(keys)} grad ${i}`).toBeLessThan(1e-10));
      // the input gradient tells the two rules apart (the unquantized weights' would be far off)
      expect(scaledError(got[0]!, straight[0]!)).toBeGreaterThan(1e-6);
    }
  });

  it("int8 on the sparse ragged_dot path leaves the experts float: only the gate differs from the float layer", () => {
    const w = randomWeights(cfg64(BASE), d);
    const x = randomInput(cfg64(BASE), d);
    const q = routedMoeForward(cfg64({ ...BASE, quantization: "int8", megablox: false }), w, x);
    const mb = routedMoeForward(cfg64({ ...BASE, quantization: "int8", megablox: true }), w, x);
    const f = routedMoeForward(cfg64(BASE), w, x);
    expect(scaledError(q.gateLogits_BSE, mb.gateLogits_BSE)).toBe(0);
    expect(scaledError(q.gateLogits_BSE, f.gateLogits_BSE)).toBeGreaterThan(1e-6);
    expect(scaledError(q.output, mb.output)).toBeGreaterThan(1e-6);
  });

  it.each([
    ["intmp: per-expert scales, so EP=2 equals EP=1", intmp(8), true],
    ["int8 megablox: per-column scales over each rank's local experts, so EP=2 differs from EP=1", { quantization: "int8" }, false],
  ])("%s", async (_n, keys, same) => {
    const cfg = cfg64({ ...BASE, ...keys });
    const w = randomWeights(cfg, d);
    const x = randomInput(cfg, d);
    const single = routedMoeForward(cfg, w, x).output;
    const outs = await runSpmd(2, async (g) => {
      const o = await routedMoeForwardParallel(cfg, g, "batch_sharded", shardWeights(w, g.rank, 2), sliceAxis(x, 0, g.rank, g.rank + 1));
      return o.output;
    });
    const ep = concatenate(outs, 0);
    if (same) expect(scaledError(ep, single)).toBeLessThan(1e-12);
    else expect(scaledError(ep, single)).toBeGreaterThan(1e-6);
  });

  it("int8 training with a quantKey: same forward, 8-bit stochastic gradients reproducible from the key", () => {
    const cfg = cfg64({ ...BASE, sparse_matmul: false, quantization: "int8" });
    const w = randomWeights(cfg, d);
    const x = randomInput(cfg, d);
    const run = (quantKey?: Key): { y: Tensor; g: Tensor[] } => {
      let y: Tensor | undefined;
      const g = valueAndGrad((xx: Tensor, wi0: Tensor) => {
        y = routedMoeForward(cfg, { ...w, wi0 }, xx, quantKey === undefined ? {} : { quantKey }).output;
        return sum(mul(y, y));
      })(x, w.wi0).grads;
      return { y: stopGradient(y!), g };
    };
    const ste = run();
    const [a, b, c] = [run(prngKey(1)), run(prngKey(1)), run(prngKey(2))];
    expect(scaledError(a.y, ste.y)).toBe(0);
    for (let i = 0; i < 2; i++) {
      expect(scaledError(a.g[i]!, b.g[i]!)).toBe(0);
      expect(scaledError(a.g[i]!, c.g[i]!)).toBeGreaterThan(0);
      expect(scaledError(a.g[i]!, ste.g[i]!)).toBeGreaterThan(0);
      expect(scaledError(a.g[i]!, ste.g[i]!)).toBeLessThan(0.1);
    }
  });
});
