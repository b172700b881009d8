import { describe, expect, it } from "vitest";
import { Tensor } from "../../src/core/tensor.js";
import type { GoldenCase, CaseTensor } from "../../src/cli/golden/case.js";
import { runSingleDevice, type Produced } from "../../src/cli/golden/single.js";
import { runExpertParallelCase } from "../../src/cli/golden/expert-parallel.js";
import { moeConfig, type MoeConfig } from "../../src/moe/config.js";
import type { EpPath } from "../../src/moe/expert-parallel.js";
import { RoutedMoE, routedMoeForward, routedMoeForwardParallel, shardWeights } from "../../src/moe/routed-moe.js";
import { meshShardWeights } from "../../src/moe/tensor-parallel.js";
import { concatenate } from "../../src/ops/movement.js";
import { createLocalGroup } from "../../src/parallel/local-group.js";
import { Mesh } from "../../src/parallel/mesh.js";
import { foldIn, normal, prngKey } from "../../src/nn/random.js";
import { testBackends, withBackend } from "../harness/backends.js";

function t(x: Tensor): CaseTensor {
  return { shape: [...x.shape], dtype: "float32", data: Array.from(x.data) };
}

function makeCase(keys: Record<string, unknown>, B: number, S: number, D: number, H: number, N: number, seed: number): GoldenCase {
  const cfg = moeConfig({ dtype: "float32", weight_dtype: "float32", ...keys });
  const E = cfg.numExperts;
  const k = prngKey(seed);
  const n = (i: number, shape: number[], s = 1): CaseTensor => {
    const r = t(normal(foldIn(k, i), shape, "float32"));
    r.data = r.data.map((v) => Math.fround(v * s));
    return r;
  };
  const tensors: Record<string, CaseTensor> = {
    x: n(0, [B, S, D]),
    gate_kernel: n(1, [D, E]),
    wi_0: n(2, [E, D, H], 0.5),
    wi_1: n(3, [E, D, H], 0.5),
    wo: n(4, [E, H, D], 0.5),
    cotangent: n(5, [B, S, D]),
  };
  if (cfg.routedBias) tensors.gate_bias = n(6, [E], 0.3);
  if (cfg.mlpBias) Object.assign(tensors, { wi_0_bias: n(7, [E, H], 0.2), wi_1_bias: n(8, [E, H], 0.2), wo_bias: n(9, [E, D], 0.2) });
  if (cfg.useRandomRouting) {
    const ids = Array.from({ length: B * S * cfg.numExpertsPerTok }, (_, i) => (i * 7 + seed) % E);
    tensors.random_top_k_indices = { shape: [B, S, cfg.numExpertsPerTok], dtype: "int32", data: ids };
  }
  const input_names = Object.keys(tensors);
  return {
    name: "ep",
    description: "",
    config: { dtype: "float32", weight_dtype: "float32", ...keys },
    expert_parallelism: N,
    expert_parallelism_path: "none",
    grad_objective: "",
    input_names,
    expected_names: [],
    tensors,
  };
}

function maxDiff(a: Produced[string], b: Produced[string]): number {
  const x = a as Tensor;
  const y = b as Tensor;
  expect(x.shape).toEqual(y.shape);
  let m = 0;
  for (let i = 0; i < x.size; i++) m = Math.max(m, Math.abs(x.data[i]! - y.data[i]!));
  return m;
}

/** max(1, max|t|): the golden-style scale for a tolerance */
function scale(t: Produced[string]): number {
  return Math.max(1, ...Array.from((t as Tensor).data, Math.abs));
}

const GRADS = ["grad_x", "grad_gate_kernel", "grad_wi_0", "grad_wi_1", "grad_wo"];

const SETUPS: [string, Record<string, unknown>, number, number][] = [
  ["batch sharded, N=2", { decoder_block: "mixtral", num_experts: 8, num_experts_per_tok: 2, load_balance_loss_weight: 0.01 }, 4, 2],
  [
    "batch sharded, N=4, mlp_bias, sigmoid+bias",
    { num_experts: 8, num_experts_per_tok: 3, mlp_bias: true, routed_score_func: "sigmoid", routed_bias: true, decoder_block: "default" },
    4,
    4,
  ],
  [
    "batch replicated (decode), N=2",
    { decoder_block: "mixtral", num_experts: 4, num_experts_per_tok: 2, load_balance_loss_weight: 0.01 },
    1,
    2,
  ],
  [
    "batch replicated (decode), N=4, deepseek3 groups",
    {
      decoder_block: "deepseek",
      model_name: "deepseek3-test",
      num_experts: 8,
      num_experts_per_tok: 2,
      routed_score_func: "sigmoid",
      routed_bias: true,
      n_routing_groups: 4,
      topk_routing_group: 2,
    },
    1,
    4,
  ],
  [
    "ring of experts, N=2",
    {
      decoder_block: "mixtral",
      num_experts: 4,
      num_experts_per_tok: 2,
      use_ring_of_experts: true,
      mlp_bias: true,
      load_balance_loss_weight: 0.01,
    },
    2,
    2,
  ],
  [
    "ring of experts, N=2, batch 1 (replicated)",
    { decoder_block: "mixtral", num_experts: 4, num_experts_per_tok: 2, use_ring_of_experts: true, load_balance_loss_weight: 0.01 },
    1,
    2,
  ],
  [
    "ring of experts, N=2, random routing (injected draw)",
    {
      decoder_block: "mixtral",
      num_experts: 4,
      num_experts_per_tok: 2,
      use_ring_of_experts: true,
      use_random_routing: true,
      load_balance_loss_weight: 0.01,
    },
    2,
    2,
  ],
  [
    "batch sharded, N=2, random routing (injected draw)",
    { decoder_block: "mixtral", num_experts: 4, num_experts_per_tok: 2, use_random_routing: true },
    2,
    2,
  ],
  [
    "ring of experts, N=4",
    { decoder_block: "qwen3", num_experts: 8, num_experts_per_tok: 4, use_ring_of_experts: true, norm_topk_prob: true },
    4,
    4,
  ],
];

const CASES = testBackends().flatMap((b) => SETUPS.map((s) => [b, ...s] as const));

describe.each(CASES)("EP=N equals EP=1 on %s: %s", (backend, name, keys, B, N) => {
  const c = makeCase(keys, B, 3, 6, 5, N, name.length);
  const cfg = moeConfig(c.config);

  it("outputs, routing and every gradient", async () => {
    const [one, ep] = await withBackend(backend, async () => [runSingleDevice(c, cfg), await runExpertParallelCase(c, cfg)] as const);
    const ring = cfg.useRingOfExperts;
    // only permutations separate the paths on ref, except the ring's cross-rank sum; on native, EP=1 runs
    // the fused FFN kernels with their own combine, the EP ranks run them on their received rows (one expert
    // per row) and combine after the return trip
    const exact = backend === "ref" && !ring;
    expect(maxDiff(ep.output, one.output)).toBeLessThanOrEqual(exact ? 0 : 1e-6 * scale(one.output));
    expect(Array.from((ep.top_k_indices as Tensor).data)).toEqual(Array.from((one.top_k_indices as Tensor).data));
    for (const g of GRADS) expect(maxDiff(ep[g], one[g]) / scale(one[g]), g).toBeLessThan(1e-5);
    if (one.lb_loss !== undefined) {
      const per = Array.from((ep.lb_loss_per_shard as Tensor).data);
      const mean = per.reduce((a, b) => a + b, 0) / per.length;
      expect(Math.abs(mean - (one.lb_loss as Tensor).item())).toBeLessThan(1e-7);
    }
  });

  if (B > 1 && !cfg.useRingOfExperts && backend === "ref") {
    it("expert-weight gradients are bit-identical (same rows in the same order per expert)", async () => {
      const [one, ep] = await withBackend(backend, async () => [runSingleDevice(c, cfg), await runExpertParallelCase(c, cfg)] as const);
      for (const g of ["grad_wi_0", "grad_wi_1", "grad_wo"]) expect(maxDiff(ep[g], one[g]), g).toBe(0);
    });
  }
});

const EP_KEYS = { decoder_block: "mixtral", num_experts: 4, num_experts_per_tok: 2, emb_dim: 8, moe_mlp_dim: 4, dtype: "float32" };

/** Each of two in-process ranks' error from a forward of what `setup(rank)` gives it ("" where it succeeded). */
async function forwardOnTwo(setup: (rank: number) => { cfg: MoeConfig; path: EpPath; rows: number }): Promise<string[]> {
  const w = new RoutedMoE(moeConfig(EP_KEYS), { key: prngKey(3) }).weights;
  const settled = await Promise.allSettled(
    createLocalGroup(2).map((g) => {
      const { cfg, path, rows } = setup(g.rank);
      return routedMoeForwardParallel(cfg, g, path, shardWeights(w, g.rank, 2), normal(prngKey(g.rank), [rows, 3, 8], "float32"));
    }),
  );
  return settled.map((r) => (r.status === "rejected" ? String(r.reason) : ""));
}

describe("EP errors", () => {
  it("a ragged buffer that would overflow is refused, naming ragged_buffer_factor", async () => {
    const c = makeCase({ decoder_block: "mixtral", num_experts: 4, num_experts_per_tok: 2, ragged_buffer_factor: 0.25 }, 4, 3, 6, 5, 2, 3);
    await expect(runExpertParallelCase(c, moeConfig(c.config))).rejects.toThrow(/ragged_buffer_factor/);
  });
  it.each([
    ["the dense path", { sparse_matmul: false }, "batch_sharded"],
    ["the dense capacity path", { sparse_matmul: false, capacity_factor: 1 }, "ring_of_experts"],
    ["the sparse ring", {}, "ring_of_experts"],
  ] as const)(
    "%s refuses batch slices of different sizes on every rank (the dense path kept another rank's rows)",
    async (_, keys, path) => {
      const cfg = moeConfig({ ...EP_KEYS, ...keys });
      const errors = await forwardOnTwo((rank) => ({ cfg, path, rows: rank === 0 ? 2 : 1 }));
      for (const e of errors) expect(e).toContain("needs equal: batch_rows is 2 on rank 0, 1 on rank 1");
    },
  );
  it("the replicated path refuses ranks holding different rows of the same shape (their sums mixed them)", async () => {
    const errors = await forwardOnTwo(() => ({ cfg: moeConfig(EP_KEYS), path: "batch_replicated", rows: 2 }));
    for (const e of errors)
      expect(e).toMatch(
        /the batch slices over the expert axis, which the batch_replicated path needs equal: rows is "[0-9a-f]+" on rank 0, "[0-9a-f]+" on rank 1/,
      );
  });
  it("ranks given different configs or paths fail alike, naming the key (each computed its own layer)", async () => {
    const errors = await forwardOnTwo((rank) => ({
      cfg: moeConfig({ ...EP_KEYS, mlp_activations: [rank === 0 ? "silu" : "gelu", "linear"] }),
      path: "batch_sharded",
      rows: 2,
    }));
    for (const e of errors)
      expect(e).toMatch(
        /the ranks disagree on the layer \(config, path, mesh, input and gate\): config\.mlp_activations\.0 is "silu" on rank 0, "gelu" on rank 1/,
      );
    const paths = await forwardOnTwo((rank) => ({
      cfg: moeConfig(EP_KEYS),
      path: rank === 0 ? "batch_sharded" : "ring_of_experts",
      rows: 2,
    }));
    for (const e of paths) expect(e).toMatch(/path is "batch_sharded" on rank 0, "ring_of_experts" on rank 1/);
    const bad = await forwardOnTwo(() => ({ cfg: moeConfig(EP_KEYS), path: "batch-sharded" as EpPath, rows: 2 }));
    for (const e of bad)
      expect(e).toContain('[RoutedMoE] path "batch-sharded" is not one of batch_sharded, batch_replicated, ring_of_experts');
  });
  it("ranks whose replicated gate differs (layers seeded apart) are refused: they routed the same token apart", async () => {
    const cfg = moeConfig({ ...EP_KEYS, routed_bias: true });
    const layers = [new RoutedMoE(cfg, { key: prngKey(3) }), new RoutedMoE(cfg, { key: prngKey(4) })];
    const run = (w: (rank: number) => RoutedMoE["weights"]) =>
      Promise.allSettled(
        createLocalGroup(2).map((g) =>
          routedMoeForwardParallel(
            cfg,
            g,
            "batch_sharded",
            shardWeights(w(g.rank), g.rank, 2),
            normal(prngKey(g.rank), [2, 3, 8], "float32"),
          ),
        ),
      );
    for (const r of await run((rank) => layers[rank]!.weights))
      expect(r.status === "rejected" ? String(r.reason) : "").toMatch(/gate\.kernel is "[0-9a-f]+" on rank 0, "[0-9a-f]+" on rank 1/);
    // one element of the bias apart, the kernels equal: the bias is named alone
    const bias = layers[0]!.weights.gateBias!;
    const moved = new Float32Array(bias.data as Float32Array);
    moved[moved.length - 1]! += 1;
    const other = { ...layers[0]!.weights, gateBias: new Tensor(moved, [...bias.shape], "float32") };
    for (const r of await run((rank) => (rank === 0 ? layers[0]!.weights : other))) {
      const e = r.status === "rejected" ? String(r.reason) : "";
      expect(e).toMatch(/gate\.bias is "[0-9a-f]+" on rank 0, "[0-9a-f]+" on rank 1/);
      expect(e).not.toContain("gate.kernel");
    }
    // the same gate on both: runs
    for (const r of await run(() => layers[0]!.weights)) expect(r.status).toBe("fulfilled");
  });
  it("past 65,536 gate elements the hash samples them, and successive calls shift the sample: one element apart is caught", async () => {
    const cfg = moeConfig({ ...EP_KEYS, emb_dim: 20000 });
    const w = new RoutedMoE(cfg, { key: prngKey(3) }).weights;
    const words = w.gateKernel.size;
    const step = (words - 1) / (2 ** 16 - 1);
    const sampled = new Set(Array.from({ length: 2 ** 16 }, (_, i) => Math.round(i * step)));
    const j = Array.from({ length: words }, (_, i) => i).find((i) => !sampled.has(i))!;
    const moved = new Float32Array(w.gateKernel.data as Float32Array);
    moved[j]! += 1;
    const apart = { ...w, gateKernel: new Tensor(moved, [...w.gateKernel.shape], "float32") };
    const groups = createLocalGroup(2);
    const x = normal(prngKey(0), [2, 1, 20000], "float32");
    const call = () =>
      Promise.allSettled(
        groups.map((g) => routedMoeForwardParallel(cfg, g, "batch_sharded", shardWeights(g.rank === 0 ? w : apart, g.rank, 2), x)),
      );
    for (const r of await call()) expect(r.status).toBe("fulfilled"); // the first call's sample misses element j
    for (const r of await call()) expect(r.status === "rejected" ? String(r.reason) : "").toMatch(/gate\.kernel is "[0-9a-f]+" on rank 0/);
  });
  it("a batch not divisible by the expert shards is refused", async () => {
    const c = makeCase({ decoder_block: "mixtral", num_experts: 4, num_experts_per_tok: 2 }, 3, 3, 6, 5, 2, 3);
    await expect(runExpertParallelCase(c, moeConfig(c.config))).rejects.toThrow(/not divisible/);
  });
});

describe("mesh and shard arguments", () => {
  it("an unknown mesh axis is refused with the closest one (it read as size 1)", () => {
    const [g] = createLocalGroup(1);
    expect(() => new Mesh(g!, { experts: 1 } as never)).toThrow("[mesh] unknown axis experts (did you mean expert?)");
    const mesh = new Mesh(g!, { expert: 1 });
    expect(() => mesh.axis("experts" as never)).toThrow("[mesh] unknown axis experts");
    expect(() => mesh.block(["tensor", "fdsp" as never])).toThrow("[mesh] unknown axis fdsp (did you mean fsdp?)");
  });
  it("MaxText's other mesh axes pass at size 1 (a MaxText mesh copied whole) and are refused above it", () => {
    const [g] = createLocalGroup(1);
    const mesh = new Mesh(g!, { data: 1, stage: 1, fsdp: 1, fsdp_transpose: 1, sequence: 1, context: 1, expert: 1, autoregressive: 1 });
    expect(mesh.toString()).toBe("data=1 fsdp=1 tensor=1 tensor_transpose=1 expert=1");
    expect(() => new Mesh(g!, { sequence: 2 } as never)).toThrow(
      "[mesh] axis sequence=2: a MaxText axis the MoE layer does not shard over (give it size 1; the axes are data, fsdp, tensor, tensor_transpose, expert)",
    );
    expect(() => mesh.axis("sequence" as never)).toThrow("[mesh] unknown axis sequence");
  });
  it("shardWeights names a rank out of range and experts that do not split", () => {
    const w = new RoutedMoE(moeConfig(EP_KEYS), { key: prngKey(3) }).weights;
    expect(() => shardWeights(w, 0, 3)).toThrow("[shardWeights] 4 experts do not split over 3 ranks");
    expect(() => shardWeights(w, 2, 2)).toThrow("[shardWeights] rank 2 of 2: needs 0 <= rank < size");
  });
});

describe("the per-forward agreement compares what must agree, where it must", () => {
  it("data replicas may hold different batch sizes on the dense path; the expert axis's slices must be equal", async () => {
    const cfg = moeConfig({ ...EP_KEYS, sparse_matmul: false });
    const w = new RoutedMoE(cfg, { key: prngKey(3) }).weights;
    const rows = [1, 1, 2, 2]; // ranks (data, expert) = (0,0) (0,1) (1,0) (1,1)
    const xs = rows.map((b, r) => normal(prngKey(10 + r), [b, 3, 8], "float32"));
    const outs = await Promise.all(
      createLocalGroup(4).map(async (g) => {
        const mesh = new Mesh(g, { data: 2, expert: 2 });
        return (await routedMoeForwardParallel(cfg, mesh, "batch_sharded", meshShardWeights(cfg, w, mesh), xs[g.rank]!)).output;
      }),
    );
    for (const d of [0, 1]) {
      const whole = routedMoeForward(cfg, w, concatenate([xs[2 * d]!, xs[2 * d + 1]!], 0)).output;
      const got = concatenate([outs[2 * d]!, outs[2 * d + 1]!], 0);
      expect(Math.max(...Array.from(whole.data, (v, i) => Math.abs(v - got.data[i]!)))).toBeLessThan(1e-5);
    }
  });
  it("ranks on different meshes fail alike, naming the mesh", async () => {
    const w = new RoutedMoE(moeConfig(EP_KEYS), { key: prngKey(3) }).weights;
    const settled = await Promise.allSettled(
      createLocalGroup(2).map((g) => {
        const x = normal(prngKey(g.rank), [2, 3, 8], "float32");
        const grid = g.rank === 0 ? new Mesh(g, { expert: 2 }) : new Mesh(g, { data: 2 });
        return routedMoeForwardParallel(moeConfig(EP_KEYS), grid, "batch_sharded", meshShardWeights(moeConfig(EP_KEYS), w, grid), x);
      }),
    );
    for (const r of settled) expect(String((r as PromiseRejectedResult).reason)).toContain("mesh is");
  });
});
