// jit: a recorded function replays its kernels with the same bits as running it, runs none of its JavaScript again,
// refuses a function that branches on values it computed (naming the place), repeats the checks recorded with
// checkValues, recomputes what it computed once from weights after they are rewritten (and, at each replay, what the
// recorded call recycled), and leaves gradients alone.
import { afterAll, describe, expect, it } from "vitest";
import { jit } from "../../src/backends/jit.js";
import { useBackend } from "../../src/backends/select.js";
import { startTrace, stopTrace } from "../../src/backends/trace.js";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { MoeError } from "../../src/core/errors.js";
import { recycle } from "../../src/core/pool.js";
import { checkValues, Tensor, tensor } from "../../src/core/tensor.js";
import { moeConfig, type MoeConfig } from "../../src/moe/config.js";
import { quantizeWeights } from "../../src/moe/quantize-weights.js";
import { routedMoeForward, type RoutedMoeWeights } from "../../src/moe/routed-moe.js";
import { normal, prngKey, foldIn } from "../../src/nn/random.js";
import { add, mul } from "../../src/ops/elementwise.js";
import { sgdStep } from "../../src/ops/optim-steps.js";
import { sum } from "../../src/ops/reduce.js";
import { testBackends } from "../harness/backends.js";
import { randomWeights, type Dims } from "../moe/setup.js";

const d: Dims = { B: 2, S: 3, D: 8, H: 6 };
const BASE = { num_experts: 4, num_experts_per_tok: 2, emb_dim: d.D, moe_mlp_dim: d.H, dtype: "float32", weight_dtype: "float32" };
const LAYERS: Record<string, Record<string, unknown>> = {
  "mixtral, sparse": { decoder_block: "mixtral", sparse_matmul: true },
  "deepseek groups and bias": {
    decoder_block: "deepseek",
    model_name: "deepseek3-test",
    routed_score_func: "sigmoid",
    routed_bias: true,
    n_routing_groups: 2,
    topk_routing_group: 1,
    routed_scaling_factor: 2.5,
    sparse_matmul: true,
  },
  "dense with capacity": { decoder_block: "mixtral", sparse_matmul: false, capacity_factor: 1, model_call_mode: "inference" },
  "bfloat16, shared expert, load-balance loss": {
    decoder_block: "deepseek",
    routed_score_func: "sigmoid",
    shared_experts: 1,
    load_balance_loss_weight: 0.01,
    dtype: "bfloat16",
    weight_dtype: "bfloat16",
  },
  "served int8": { decoder_block: "mixtral", sparse_matmul: true, quantization: "intmp", quant_cfg: { __default__: { w_bits: 8 } } },
  // its gate quantizes the weight and recycles the codes within the call
  "served int4, bfloat16 layer": {
    decoder_block: "mixtral",
    sparse_matmul: true,
    dtype: "bfloat16",
    quantization: "intmp",
    quant_cfg: { __default__: { w_bits: 4 } },
  },
};

const inputs = (n: number): Tensor[] => Array.from({ length: n }, (_, i) => normal(foldIn(prngKey(7), i), [d.B, d.S, d.D], "float32"));
const same = (a: unknown, b: unknown): boolean => {
  if (a instanceof Tensor && b instanceof Tensor) {
    return a.dtype === b.dtype && a.shape.join() === b.shape.join() && Array.from(a.data).every((v, i) => Object.is(v, b.data[i]));
  }
  return a === b;
};

function layer(name: string): { cfg: MoeConfig; w: RoutedMoeWeights<never> } {
  const cfg = moeConfig({ ...BASE, ...LAYERS[name] });
  let w = randomWeights(cfg, d) as RoutedMoeWeights;
  if (cfg.routedBias) w = { ...w, gateBias: normal(prngKey(3), [cfg.numExperts], "float32") };
  if (name.startsWith("served")) return { cfg, w: quantizeWeights(w, name.startsWith("served int8") ? "int8" : "int4") as never };
  return { cfg, w: w as never };
}

describe("jit", () => {
  afterAll(() => void useBackend("ref"));

  describe.each(testBackends())("on %s", (backend) => {
    it.each(Object.keys(LAYERS))("replays the layer (%s) with the bits of running it", (name) => {
      useBackend(backend);
      const { cfg, w } = layer(name);
      const f = (x: Tensor) => routedMoeForward(cfg, w, x);
      let calls = 0;
      const g = jit((x: Tensor) => (calls++, f(x)));
      // eager calls between the replays: one that recycles its own temporaries (the quantized gate's codes) leaves the
      // recording's constants alone
      for (const x of inputs(3)) {
        const want = f(x) as unknown as Record<string, unknown>;
        const got = g(x) as unknown as Record<string, unknown>;
        expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
        for (const k of Object.keys(want)) expect([k, same(got[k], want[k])]).toEqual([k, true]);
      }
      expect(calls).toBe(1);
    });
  });

  it("runs none of the function's JavaScript on a replay, only its kernels", () => {
    useBackend("ref");
    const w = normal(prngKey(1), [4], "float32");
    let calls = 0;
    const g = jit((x: Tensor) => {
      calls++;
      return { y: add(x, mul(w, 2)), note: "kept" };
    });
    const x = normal(prngKey(2), [4], "float32");
    g(x);
    startTrace();
    const r = g(x);
    const prims = stopTrace().map((e) => e.prim);
    expect(calls).toBe(1);
    expect(r.note).toBe("kept");
    // mul(w, 2) depends on no argument: computed once when recorded
    expect(prims).toEqual(["add"]);
    expect(Array.from(r.y.data)).toEqual(Array.from(x.data, (v, i) => Math.fround(v + Math.fround(w.data[i]! * 2))));
  });

  it("records again for new shapes and dtypes", () => {
    useBackend("ref");
    let calls = 0;
    const g = jit((x: Tensor) => (calls++, sum(x)));
    expect(g(tensor([1, 2, 3])).data[0]).toBe(6);
    expect(g(tensor([4, 5, 6])).data[0]).toBe(15);
    expect(g(tensor([1, 2, 3, 4])).data[0]).toBe(10);
    expect(calls).toBe(2);
  });

  it("lets the function read values computed from its weights alone, under any tensor over them", () => {
    useBackend("ref");
    const w = tensor([4, 8]);
    const g = jit((x: Tensor) => mul(x, mul(w, 0.5).sameStorage().data[1]!));
    g(tensor([1, 2]));
    expect(Array.from(g(tensor([3, 5])).data)).toEqual([12, 20]);
  });

  it("records again when arguments that shared storage no longer do", () => {
    useBackend("ref");
    const g = jit((a: Tensor, b: Tensor) => add(a, mul(b, 2)));
    const [x, y] = [tensor([1, 2]), tensor([10, 20])];
    expect(Array.from(g(x, x).data)).toEqual([3, 6]);
    expect(Array.from(g(x, y).data)).toEqual([21, 42]);
    expect(Array.from(g(y, y).data)).toEqual([30, 60]);
  });

  it("refuses a function whose JavaScript reads a value computed from its arguments, naming the place", () => {
    useBackend("ref");
    const g = jit((x: Tensor) => (sum(x).data[0]! > 0 ? mul(x, 2) : x));
    expect(() => g(tensor([1, 2]))).toThrow(MoeError);
    expect(() => g(tensor([1, 2]))).toThrow(/\[jit\] the function reads values it computed.*float32\[\].*jit\.test\.ts/);
    // reading an argument is the same branch on data
    expect(() => jit((x: Tensor) => mul(x, x.data[0]!))(tensor([3]))).toThrow(/float32\[1\] computed from the arguments/);
  });

  it("repeats checks recorded with checkValues on every replay", () => {
    useBackend("ref");
    const { cfg, w } = layer("mixtral, sparse");
    const g = jit((x: Tensor) => routedMoeForward(cfg, w, x));
    const [x] = inputs(1);
    g(x!);
    const bad = tensor(
      Array.from(x!.data, (v, i) => (i === 5 ? Number.NaN : v)),
      [...x!.shape],
    );
    expect(() => g(bad)).toThrow(/gate logits are not finite.*the layer input float32\[2,3,8\] holds NaN/);
    let seen = 0;
    const h = jit((y: Tensor) => {
      const s = sum(y);
      checkValues([s], ([v]) => void (seen += v!.data[0]!));
      return s;
    });
    h(tensor([1, 2]));
    h(tensor([3, 4]));
    expect(seen).toBe(10);
  });

  it("runs again a step on weights alone whose output the recorded call recycled", () => {
    useBackend("ref");
    const w = tensor([1, 2]);
    const g = jit((x: Tensor) => {
      const t = mul(w, 10);
      const y = add(x, t);
      recycle(t);
      return y;
    });
    const x = tensor([0.5, 0.5]);
    expect(Array.from(g(x).data)).toEqual([10.5, 20.5]);
    expect(Array.from(g(tensor([1, 1])).data)).toEqual([11, 21]);
  });

  it("recomputes what it computed from weights once they, or the constants, are recycled, and only then", () => {
    useBackend("ref");
    const w = tensor([1, 2]);
    let calls = 0;
    let hoisted: Tensor | undefined;
    const g = jit((x: Tensor) => {
      calls++;
      hoisted = mul(w, 10);
      return { y: add(x, hoisted), c: hoisted };
    });
    const x = tensor([0.5, 0.5]);
    g(x);
    recycle(tensor([7, 7]));
    expect([Array.from(g(x).y.data), calls]).toEqual([[10.5, 20.5], 1]);
    recycle(hoisted);
    expect([Array.from(g(x).c.data), calls]).toEqual([[10, 20], 2]);
    const v = tensor([3, 4]);
    const gv = jit((y: Tensor) => (calls++, add(y, mul(v, 10))));
    gv(x);
    recycle(v);
    expect(() => gv(x)).toThrow(/used after recycle/);
    expect(calls).toBe(4);
  });

  it("recomputes what it computed from weights once they are rewritten in place", () => {
    useBackend("ref");
    const w = tensor([1, 2]);
    const g = jit((x: Tensor) => add(x, mul(w, 10)));
    const x = tensor([0.5, 0.5]);
    expect(Array.from(g(x).data)).toEqual([10.5, 20.5]);
    sgdStep(w, tensor([1, 1]), undefined, { lr: 1, momentum: 0 });
    expect(Array.from(g(x).data)).toEqual([0.5, 10.5]);
  });

  it("replays a function that writes weights in place, computing nothing from them once", () => {
    useBackend("ref");
    const make = () => ({ w: tensor([1, 2]), m: tensor([0, 0]) });
    const [a, b] = [make(), make()];
    // one SGD step with momentum on w, whose gradient is x * w (w read before its update), returning 3 * w after it
    const step = (p: { w: Tensor; m: Tensor }) => (x: Tensor) => {
      const scaled = mul(p.w, 3);
      sgdStep(p.w, mul(x, p.w), p.m, { lr: 0.5, momentum: 0.9 });
      return { before: scaled, after: mul(p.w, 3) };
    };
    const eager = step(a);
    const recorded = step(b);
    let calls = 0;
    const g = jit((x: Tensor) => (calls++, recorded(x)));
    for (const x of [tensor([1, 1]), tensor([0.5, -1]), tensor([2, 0.25])]) {
      const want = eager(x);
      const got = g(x);
      expect([Array.from(got.before.data), Array.from(got.after.data)]).toEqual([
        Array.from(want.before.data),
        Array.from(want.after.data),
      ]);
    }
    expect(Array.from(b.w.data)).toEqual(Array.from(a.w.data));
    expect(Array.from(b.m.data)).toEqual(Array.from(a.m.data));
    expect(calls).toBe(1);
  });

  it("runs the function itself for arguments that carry gradients", () => {
    useBackend("ref");
    const w = tensor([1, -2, 3]);
    const f = (x: Tensor) => sum(mul(mul(x, x), w));
    const g = jit(f);
    g(tensor([1, 1, 1]));
    const x = tensor([0.5, 1.5, -1]);
    const want = valueAndGrad(f)(x);
    const got = valueAndGrad(g)(x);
    expect(Array.from(got.value.data)).toEqual(Array.from(want.value.data));
    expect(Array.from(got.grads[0]!.data)).toEqual(Array.from(want.grads[0]!.data));
  });

  it("rebuilds a result whose getters compute on access", () => {
    useBackend("ref");
    const g = jit((x: Tensor) => ({
      get doubled(): Tensor {
        return mul(x, 2);
      },
    }));
    g(tensor([1, 2]));
    expect(Array.from(g(tensor([3, 4])).doubled.data)).toEqual([6, 8]);
  });

  it("refuses results it cannot rebuild", () => {
    useBackend("ref");
    expect(() => jit((x: Tensor) => new Map([["x", x]]))(tensor([1]))).toThrow(/\[jit\] the function returned a Map/);
  });
});
