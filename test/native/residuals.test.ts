// The fused native FFN recycles its residual buffers after the backward pass that consumes them.
import { afterAll, describe, expect, it } from "vitest";
import type { Tensor } from "../../src/core/tensor.js";
import { vjp } from "../../src/autodiff/grad.js";
import { nativeBackend as nativeBackendOf } from "../../src/backends/native/index.js";
const nativeBackend = nativeBackendOf();
import { moeConfig } from "../../src/moe/config.js";
import { routedMoeForward } from "../../src/moe/routed-moe.js";
import { foldIn, normal, prngKey } from "../../src/nn/random.js";
import { useBackend } from "../../src/backends/select.js";

describe.skipIf(nativeBackend === undefined)("native fused FFN residuals", () => {
  afterAll(() => useBackend("ref"));
  const cfg = moeConfig({ decoder_block: "mixtral", num_experts: 4, num_experts_per_tok: 2, emb_dim: 8, moe_mlp_dim: 6, dtype: "float32" });
  const k = prngKey(2);
  const w = { gateKernel: normal(foldIn(k, 0), [8, 4]), wi0: normal(foldIn(k, 1), [4, 8, 6]), wi1: normal(foldIn(k, 2), [4, 8, 6]), wo: normal(foldIn(k, 3), [4, 6, 8]) };
  const x = normal(foldIn(k, 4), [2, 3, 8]);
  const ct = normal(foldIn(k, 5), [2, 3, 8]);
  const f = (xx: Tensor, wo: Tensor): Tensor[] => [routedMoeForward(cfg, { ...w, wo }, xx).output];

  it("repeated training steps give identical gradients (recycled buffers are fully rewritten)", () => {
    useBackend("native");
    const first = vjp(f, x, w.wo).pullback([ct]);
    for (let i = 0; i < 3; i++) {
      const again = vjp(f, x, w.wo).pullback([ct]);
      expect(Array.from(again[0]!.data)).toEqual(Array.from(first[0]!.data));
      expect(Array.from(again[1]!.data)).toEqual(Array.from(first[1]!.data));
    }
  });

  it("a second backward through the same graph is refused, not computed from recycled memory", () => {
    useBackend("native");
    const r = vjp(f, x, w.wo);
    r.pullback([ct]);
    expect(() => r.pullback([ct])).toThrow(/residuals were consumed/);
  });
});
