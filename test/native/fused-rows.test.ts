// expertFfn on rows already grouped by expert (what an expert-parallel rank computes) through the native fused
// kernels (fusedRowsFfn: one expert per row, combine weight 1) against the unfused composition (gmm, activation,
// gmm). Forward and the gradients of the rows and of every weight, with a ragged buffer's padding rows (zeros from
// the fused path; they never reach an output, so only the grouped rows are compared) and an empty expert; then the same
// rows unsorted, with the order that groups them, on both backends.
// Tolerance as moe-ffn.test.ts: 1e-5 · max(1, max|ref|) · sqrt(depth).
import { afterEach, describe, expect, it } from "vitest";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { nativeInfo } from "../../src/backends/native/index.js";
import { useBackend } from "../../src/backends/select.js";
import { countingNative } from "../harness/backends.js";
import { Prim } from "../../src/prims/prims.js";
import { Tensor } from "../../src/core/tensor.js";
import { mul } from "../../src/ops/elementwise.js";
import { argsort, take } from "../../src/ops/indexing.js";
import { sliceAxis } from "../../src/ops/movement.js";
import { sum } from "../../src/ops/reduce.js";
import { moeConfig } from "../../src/moe/config.js";
import { expertFfn, expertFfnComposed, type ExpertWeights } from "../../src/moe/experts.js";
import { Rng } from "../harness/random.js";

const info = nativeInfo();

const rand = (shape: number[], seed: number, scale = 1): Tensor => new Rng(seed).tensor(shape, "float32", scale);

const CASES = [
  { name: "silu", raw: {}, D: 16, H: 24, sizes: [5, 0, 7, 3], pad: 4 },
  { name: "gpt_oss + biases", raw: { decoder_block: "gpt_oss", mlp_activations: ["sigmoid", "linear"], mlp_activations_limit: 0.7, mlp_bias: true }, D: 12, H: 20, sizes: [2, 9, 1], pad: 3 },
  { name: "gelu, no padding", raw: { mlp_activations: ["gelu", "linear"] }, D: 13, H: 19, sizes: [4, 4, 6], pad: 0 },
];

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

function expectClose(nat: Tensor, ref: Tensor, depth: number, what: string): void {
  expect(nat.shape, what).toEqual(ref.shape);
  let diff = 0;
  for (let i = 0; i < ref.size; i++) {
    const d = Math.abs(nat.data[i]! - ref.data[i]!);
    diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
  }
  const tol = 1e-5 * Math.max(1, maxAbs(ref.data)) * Math.sqrt(depth);
  expect(diff, `${what}: max|diff| ${diff} > ${tol}`).toBeLessThanOrEqual(tol);
}

describe.skipIf(!info.available)(`expertFfn on grouped rows through the native fused kernels${info.available ? "" : ` (skipped: ${info.reason})`}`, () => {
  afterEach(() => void useBackend("ref"));

  for (const c of CASES) {
    it(c.name, () => {
      const E = c.sizes.length;
      const n = c.sizes.reduce((a, b) => a + b, 0);
      const R = n + c.pad;
      const cfg = moeConfig({ num_experts: E, num_experts_per_tok: 2, emb_dim: c.D, moe_mlp_dim: c.H, dtype: "float32", ...c.raw });
      const groupSizes = new Tensor(Int32Array.from(c.sizes), [E], "int32");
      const ids = new Tensor(Int32Array.from(c.sizes.flatMap((g, e) => Array<number>(g).fill(e)).concat(Array<number>(c.pad).fill(E - 1))), [R], "int32");
      const x = rand([R, c.D], 1);
      const w: ExpertWeights = { wi0: rand([E, c.D, c.H], 2, 0.5), wi1: rand([E, c.D, c.H], 3, 0.5), wo: rand([E, c.H, c.D], 4, 0.4) };
      if (cfg.mlpBias) {
        w.wi0Bias = rand([E, c.H], 5, 0.3);
        w.wi1Bias = rand([E, c.H], 6, 0.3);
        w.woBias = rand([E, c.D], 7, 0.3);
      }
      const ct = rand([n, c.D], 8);
      const args = [x, w.wi0, w.wi1, w.wo, ...(cfg.mlpBias ? [w.wi0Bias!, w.wi1Bias!, w.woBias!] : [])];
      // only the grouped rows reach the loss, as in expert parallelism
      const f =
        (ffn: typeof expertFfn) =>
        (...a: Tensor[]): Tensor => {
          const ww: ExpertWeights = { wi0: a[1]!, wi1: a[2]!, wo: a[3]!, wi0Bias: a[4], wi1Bias: a[5], woBias: a[6] };
          return sum(mul(sliceAxis(ffn(cfg, a[0]!, groupSizes, ids, ww), 0, 0, n), ct));
        };

      useBackend("ref");
      const ref = valueAndGrad(f(expertFfnComposed))(...args);
      const refOut = expertFfnComposed(cfg, x, groupSizes, ids, w);

      // the native backend, counting the fused kernels it runs
      const counting = countingNative([Prim.ExpertFfn, Prim.ExpertFfnBwd]);
      useBackend(counting.backend);
      const nat = valueAndGrad(f(expertFfn))(...args);
      const natOut = expertFfn(cfg, x, groupSizes, ids, w);
      expect(counting.calls(), "the fused kernels ran (forward, backward, forward)").toBe(3);

      const depth = Math.max(c.D, c.H, n);
      expect(natOut.shape).toEqual([R, c.D]);
      expectClose(sliceAxis(natOut, 0, 0, n), sliceAxis(refOut, 0, 0, n), depth, "forward");
      expect(maxAbs(sliceAxis(natOut, 0, n, R).data), "padding rows").toBe(0);
      expectClose(nat.value, ref.value, depth * c.D, "loss");
      nat.grads.forEach((g, i) => expectClose(g, ref.grads[i]!, depth, `gradient ${i}`));

      // the same rows handed over unsorted, with the order that groups them (an expert-parallel rank's received
      // buffer): row r of the grouped rows is xu[perm[r]], and the output comes back in xu's order
      const perm = Array.from({ length: R }, (_, i) => i).sort((a, b) => Math.sin(7.1 * a + 1) - Math.sin(7.1 * b + 1));
      const order = new Tensor(Int32Array.from(perm), [R], "int32");
      const inverse = argsort(order);
      const xu = take(x, inverse, 0);
      const grouped = sliceAxis(order, 0, 0, n);
      const fu = (...a: Tensor[]): Tensor => {
        const ww: ExpertWeights = { wi0: a[1]!, wi1: a[2]!, wo: a[3]!, wi0Bias: a[4], wi1Bias: a[5], woBias: a[6] };
        return sum(mul(take(expertFfn(cfg, a[0]!, groupSizes, ids, ww, order), grouped, 0), ct));
      };
      for (const backend of ["ref", "native"] as const) {
        const before = counting.calls();
        useBackend(backend === "ref" ? "ref" : counting.backend);
        const u = valueAndGrad(fu)(xu, ...args.slice(1));
        const uOut = expertFfn(cfg, xu, groupSizes, ids, w, order);
        // without padding the order goes into the fused kernels; with it, the rows are sorted first
        if (backend === "native") expect(counting.calls() - before, "fused kernels (forward, backward, forward)").toBe(3);
        expectClose(take(uOut, grouped, 0), sliceAxis(refOut, 0, 0, n), depth, `${backend}, unsorted: forward`);
        expect(maxAbs(take(uOut, sliceAxis(order, 0, n, R), 0).data), `${backend}, unsorted: padding rows`).toBe(0);
        expectClose(u.value, ref.value, depth * c.D, `${backend}, unsorted: loss`);
        expectClose(u.grads[0]!, take(ref.grads[0]!, inverse, 0), depth, `${backend}, unsorted: gradient of the rows`);
        u.grads.slice(1).forEach((g, i) => expectClose(g, ref.grads[i + 1]!, depth, `${backend}, unsorted: gradient ${i + 1}`));
      }
    });
  }
});
