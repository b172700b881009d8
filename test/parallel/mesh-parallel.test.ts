// The seed's parallel paths on a mesh (tensor, tensor_transpose, fsdp, data, and expert × tensor) equal the
// single-process layer: outputs, routing and every gradient. One suite, run on every Group implementation.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Tensor } from "../../src/core/tensor.js";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { add, mul } from "../../src/ops/elementwise.js";
import { sum } from "../../src/ops/reduce.js";
import { moeConfig } from "../../src/moe/config.js";
import { routedMoeForward, type RoutedMoeWeights } from "../../src/moe/routed-moe.js";
import type { EpPath } from "../../src/moe/expert-parallel.js";
import { runSpmd } from "../../src/parallel/local-group.js";
import { runWorkers } from "../../src/parallel/worker-group.js";
import type { Group } from "../../src/parallel/group.js";
import type { MeshAxis } from "../../src/parallel/mesh.js";
import { foldIn, normal, prngKey } from "../../src/nn/random.js";
import * as lib from "../../src/index.js";
import { countingNative, testBackends, withBackend } from "../harness/backends.js";
import { nativeBackend } from "../../src/backends/native/index.js";
import { useBackend } from "../../src/backends/select.js";
import { Prim } from "../../src/prims/prims.js";
// @ts-expect-error a plain .mjs fixture shared with the worker ranks
import { makeRank } from "./fixtures/mesh-rank-body.mjs";
import { mpiBatches, mpiSkipReason, mpiSuiteName } from "../harness/mpi.js";

type Shape = Partial<Record<MeshAxis, number>>;
type Coords = Record<MeshAxis, number>;
interface RankResult {
  coords: Coords;
  output: Tensor;
  topKIndices: Tensor;
  lbLoss: Tensor | undefined;
  grads: Record<string, Tensor>;
}
interface Args {
  keys: Record<string, unknown>;
  shape: Shape;
  path: EpPath;
  weights: RoutedMoeWeights;
  x: Tensor;
  ct: Tensor;
}

const rankBody = makeRank(lib) as (g: Group, a: Args) => Promise<RankResult>;
const root = join(import.meta.dirname, "../..");
const built = existsSync(join(root, "dist/src/parallel/worker-entry.js"));

/** How each parameter's dims are sharded (mesh axes per dim, first major), independent of the library's helper. */
const LAYOUT: Record<string, MeshAxis[][]> = {
  gateKernel: [[], []],
  gateBias: [[]],
  wi0: [["expert"], ["tensor_transpose", "fsdp"], ["tensor"]],
  wi1: [["expert"], ["tensor_transpose", "fsdp"], ["tensor"]],
  wo: [["expert"], ["tensor"], ["tensor_transpose", "fsdp"]],
  wi0Bias: [["expert"], ["tensor"]],
  wi1Bias: [["expert"], ["tensor"]],
  woBias: [["expert"], ["tensor", "tensor_transpose"]],
};

function blockOf(c: Coords, shape: Shape, axes: MeshAxis[]): { index: number; count: number } {
  let index = 0;
  let count = 1;
  for (const a of axes) {
    index = index * (shape[a] ?? 1) + c[a];
    count *= shape[a] ?? 1;
  }
  return { index, count };
}

/** Adds (or writes) `part` into `full` at the block `blocks[d]` of every dim d. */
function place(
  full: Float64Array,
  fullShape: readonly number[],
  part: Tensor,
  blocks: { index: number; count: number }[],
  write = false,
): void {
  const nd = fullShape.length;
  const starts = blocks.map((b, d) => (b.index * fullShape[d]!) / b.count);
  const idx = new Array<number>(nd).fill(0);
  for (let i = 0; i < part.size; i++) {
    let rem = i;
    for (let d = nd - 1; d >= 0; d--) {
      idx[d] = rem % part.shape[d]!;
      rem = Math.floor(rem / part.shape[d]!);
    }
    let off = 0;
    for (let d = 0; d < nd; d++) off = off * fullShape[d]! + starts[d]! + idx[d]!;
    full[off] = write ? part.data[i]! : full[off]! + part.data[i]!;
  }
}

/** The full tensor from every rank's block (`pick`), added up (replicas summed) or written (replicas equal). */
function assemble(
  ranks: RankResult[],
  pick: (r: RankResult) => Tensor,
  fullShape: readonly number[],
  dims: (c: Coords) => { index: number; count: number }[],
  write = false,
): Tensor {
  const full = new Float64Array(fullShape.reduce((a, b) => a * b, 1));
  for (const r of ranks) place(full, fullShape, pick(r), dims(r.coords), write);
  return new Tensor(Float32Array.from(full), [...fullShape], "float32");
}

function maxDiff(a: Tensor, b: Tensor): number {
  expect(a.shape).toEqual(b.shape);
  let m = 0;
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
  return m;
}
const scale = (t: Tensor): number => Math.max(1, ...Array.from(t.data, Math.abs));

function makeArgs(keys: Record<string, unknown>, shape: Shape, path: EpPath, B: number, seed: number): Args {
  const all = { dtype: "float32", weight_dtype: "float32", emb_dim: 8, moe_mlp_dim: 8, ...keys };
  const cfg = moeConfig(all);
  const [E, D, H, S] = [cfg.numExperts, cfg.embDim, cfg.moeMlpDim, 3];
  const k = prngKey(seed);
  const n = (i: number, s: number[], m: number): Tensor => mul(normal(foldIn(k, i), s, "float32"), m);
  const weights: RoutedMoeWeights = {
    gateKernel: n(1, [D, E], 1),
    wi0: n(2, [E, D, H], 0.5),
    wi1: n(3, [E, D, H], 0.5),
    wo: n(4, [E, H, D], 0.5),
  };
  if (cfg.routedBias) weights.gateBias = n(6, [E], 0.3);
  if (cfg.mlpBias) Object.assign(weights, { wi0Bias: n(7, [E, H], 0.2), wi1Bias: n(8, [E, H], 0.2), woBias: n(9, [E, D], 0.2) });
  return { keys: all, shape, path, weights, x: n(0, [B, S, D], 1), ct: n(5, [B, S, D], 1) };
}

function singleDevice(a: Args): { output: Tensor; topK: Tensor; lbLoss: Tensor | undefined; grads: Record<string, Tensor> } {
  const cfg = moeConfig(a.keys);
  const names = Object.keys(a.weights).filter((k) => a.weights[k as keyof RoutedMoeWeights] !== undefined) as (keyof RoutedMoeWeights)[];
  let output: Tensor | undefined;
  let topK: Tensor | undefined;
  let lbLoss: Tensor | undefined;
  const f = (x: Tensor, ...ws: Tensor[]): Tensor => {
    const o = routedMoeForward(cfg, Object.fromEntries(names.map((n, i) => [n, ws[i]!])) as unknown as RoutedMoeWeights, x);
    output = o.output;
    topK = o.topKIndices_BSK;
    lbLoss = o.lbLoss;
    const obj = sum(mul(o.output, a.ct));
    return o.lbLoss === undefined ? obj : add(obj, o.lbLoss);
  };
  const { grads } = valueAndGrad(f)(a.x, ...names.map((n) => a.weights[n]!));
  return {
    output: output!,
    topK: topK!,
    lbLoss,
    grads: Object.fromEntries([["x", grads[0]!], ...names.map((n, i) => [n, grads[i + 1]!])]),
  };
}

/** Compares a mesh run's ranks with the single-process layer. exact: the forward must match bit for bit. */
function check(a: Args, ranks: RankResult[], exact: boolean): void {
  const one = singleDevice(a);
  const B = a.x.shape[0]!;
  const sharded = B > 1;
  const batch = (c: Coords) => (sharded ? blockOf(c, a.shape, ["data", "fsdp", "expert"]) : { index: 0, count: 1 });
  const whole = { index: 0, count: 1 };
  const out = assemble(
    ranks,
    (r) => r.output,
    one.output.shape,
    (c) => [batch(c), whole, blockOf(c, a.shape, ["tensor", "tensor_transpose"])],
    true,
  );
  expect(maxDiff(out, one.output)).toBeLessThanOrEqual(exact ? 0 : 1e-6 * scale(one.output));
  const topK = assemble(
    ranks,
    (r) => r.topKIndices,
    one.topK.shape,
    (c) => [batch(c), whole, whole],
    true,
  );
  expect(Array.from(topK.data)).toEqual(Array.from(one.topK.data));
  // per-shard load-balance losses (every batch block held by as many ranks): their mean is the layer's
  if (one.lbLoss !== undefined) {
    const mean = ranks.reduce((m, r) => m + r.lbLoss!.item(), 0) / ranks.length;
    expect(Math.abs(mean - one.lbLoss.item())).toBeLessThan(1e-7);
  }
  for (const [name, g] of Object.entries(one.grads)) {
    const layout = name === "x" ? [[], [], []] : LAYOUT[name]!;
    const dims = (c: Coords) => layout.map((axes, d) => (name === "x" && d === 0 ? batch(c) : blockOf(c, a.shape, axes)));
    const got = assemble(ranks, (r) => r.grads[name]!, g.shape, dims);
    expect(maxDiff(got, g) / scale(g), name).toBeLessThan(1e-5);
  }
}

const MIXTRAL = { decoder_block: "mixtral", num_experts: 4, num_experts_per_tok: 2, load_balance_loss_weight: 0.01 };
const BIASED = { num_experts: 4, num_experts_per_tok: 2, mlp_bias: true, routed_score_func: "sigmoid", routed_bias: true };

// name, keys, mesh, path, batch; exact: only permutations separate the paths (the forward of fsdp and data)
const SETUPS: [string, Record<string, unknown>, Shape, EpPath, number, boolean][] = [
  ["tensor=2", { ...MIXTRAL, mlp_bias: true }, { tensor: 2 }, "batch_sharded", 2, false],
  ["tensor=4, sigmoid + bias", BIASED, { tensor: 4 }, "batch_sharded", 2, false],
  ["tensor_transpose=2, mlp_bias", { ...MIXTRAL, mlp_bias: true }, { tensor_transpose: 2 }, "batch_sharded", 2, false],
  ["tensor_transpose=4", MIXTRAL, { tensor_transpose: 4 }, "batch_sharded", 2, false],
  ["fsdp=2", { ...MIXTRAL, mlp_bias: true }, { fsdp: 2 }, "batch_sharded", 4, true],
  ["fsdp=4", MIXTRAL, { fsdp: 4 }, "batch_sharded", 4, true],
  ["data=2 × fsdp=2", BIASED, { data: 2, fsdp: 2 }, "batch_sharded", 4, true],
  ["fsdp=2 × tensor=2", { ...MIXTRAL, mlp_bias: true }, { fsdp: 2, tensor: 2 }, "batch_sharded", 4, false],
  ["fsdp=2 × tensor_transpose=2", MIXTRAL, { fsdp: 2, tensor_transpose: 2 }, "batch_sharded", 4, false],
  ["expert=2 × tensor=2, batch sharded", { ...MIXTRAL, mlp_bias: true }, { expert: 2, tensor: 2 }, "batch_sharded", 4, false],
  ["expert=2 × tensor=2, batch replicated (decode)", MIXTRAL, { expert: 2, tensor: 2 }, "batch_replicated", 1, false],
  [
    "expert=2 × tensor=2, ring of experts",
    { ...MIXTRAL, use_ring_of_experts: true, mlp_bias: true },
    { expert: 2, tensor: 2 },
    "ring_of_experts",
    2,
    false,
  ],
  ["expert=2 × fsdp=2", MIXTRAL, { fsdp: 2, expert: 2 }, "batch_sharded", 4, false],
  ["dense, tensor=2, mlp_bias", { ...MIXTRAL, sparse_matmul: false, mlp_bias: true }, { tensor: 2 }, "batch_sharded", 2, false],
  [
    "dense capacity, fsdp=2 × tensor=2",
    { ...MIXTRAL, sparse_matmul: false, capacity_factor: 1.0 },
    { fsdp: 2, tensor: 2 },
    "batch_sharded",
    4,
    false,
  ],
  ["dense, fsdp=2", { ...MIXTRAL, sparse_matmul: false }, { fsdp: 2 }, "batch_sharded", 2, true],
  // the dense path under expert parallelism gathers the experts and the batch: the losses are the whole batch's
  [
    "dense capacity, expert=2 × tensor=2",
    { ...MIXTRAL, sparse_matmul: false, capacity_factor: 1.0, mlp_bias: true },
    { expert: 2, tensor: 2 },
    "batch_sharded",
    4,
    false,
  ],
  ["dense, expert=2, batch replicated (decode)", { ...BIASED, sparse_matmul: false }, { expert: 2 }, "batch_replicated", 1, false],
];

const ranksOf = (s: Shape): number => Object.values(s).reduce((a, b) => a * b, 1);

// the MPI ranks run every setup of a rank count in one job, with the same arguments as the other groups
const MPI_ARGS = SETUPS.map(([name, keys, shape, path, B]) => makeArgs(keys, shape, path, B, name.length));
const mpi = mpiBatches<Args, RankResult>(join(import.meta.dirname, "fixtures/mesh-rank.mjs"), MPI_ARGS, (a) => ranksOf(a.shape));

const GROUPS: [string, (a: Args, setup: number) => Promise<RankResult[]>][] = [
  ["in-process (runSpmd)", (a) => runSpmd(ranksOf(a.shape), (g) => rankBody(g, a))],
  ["worker threads (runWorkers)", (a) => runWorkers<RankResult>(ranksOf(a.shape), join(import.meta.dirname, "fixtures/mesh-rank.mjs"), a)],
  [mpiSuiteName("MPI ranks (mpirun, 2 and 4 ranks)"), (_, setup) => mpi(MPI_ARGS[setup]!)],
];

describe.each(GROUPS)("mesh paths equal one device, %s", (groupName, run) => {
  // worker and MPI ranks run the reference backend (no per-rank native contexts yet)
  const workers = !groupName.startsWith("in-process");
  if (groupName.startsWith("MPI") && mpiSkipReason !== undefined) return void it.skip(mpiSkipReason);
  const backends = workers ? ["ref" as const] : testBackends();
  describe.skipIf(workers && !built).each(backends.flatMap((b) => SETUPS.map((s, i) => [b, ...s, i] as const)))(
    "%s: %s",
    (backend, name, keys, shape, path, B, exact, setup) => {
      it("outputs, routing and every gradient", async () => {
        if (workers) process.env.MOEKIT_BACKEND = "ref";
        const a = makeArgs(keys, shape, path, B, name.length);
        const ranks = await withBackend(backend, () => run(a, setup));
        await withBackend(backend, () => check(a, ranks, exact && backend === "ref"));
        if (groupName.startsWith("MPI")) {
          // every rank's output and gradients carry the in-process group's bits (same backend, rank-order sums)
          const local = await withBackend("ref", () => runSpmd(ranksOf(a.shape), (g) => rankBody(g, a)));
          const bits = (r: RankResult): number[][] => [r.output, ...Object.values(r.grads)].map((t) => Array.from(t.data));
          ranks.forEach((r, i) => expect(bits(r)).toEqual(bits(local[i]!)));
        }
      });
    },
  );
});

describe("mesh size rules (ConfigErrors naming the key)", () => {
  const refused = async (keys: Record<string, unknown>, shape: Shape, re: RegExp): Promise<void> => {
    const a = makeArgs(keys, shape, "batch_sharded", 4, 1);
    await expect(runSpmd(ranksOf(shape), (g) => rankBody(g, a))).rejects.toThrow(re);
  };
  it("tensor parallelism must divide the experts' hidden dim and the embedding dim", async () => {
    await refused({ ...MIXTRAL, moe_mlp_dim: 6 }, { tensor: 4 }, /ici_tensor_parallelism=4: must divide the experts' hidden dim \(6\)/);
    await refused(
      { ...MIXTRAL, emb_dim: 6, moe_mlp_dim: 4 },
      { tensor: 4 },
      /ici_tensor_parallelism=4: must divide the embedding dim \(6\)/,
    );
  });
  it("fsdp × tensor_transpose must divide the embedding dim", async () => {
    await refused({ ...MIXTRAL, emb_dim: 6 }, { fsdp: 4 }, /ici_fsdp_parallelism=4: .*must divide the embedding dim \(6\)/);
    await refused({ ...MIXTRAL, emb_dim: 6 }, { tensor_transpose: 4 }, /ici_tensor_transpose_parallelism=4: must divide the embedding dim/);
  });
  it("the combinations the seed cannot run are refused", async () => {
    await refused(
      MIXTRAL,
      { tensor: 2, tensor_transpose: 2 },
      /ici_tensor_transpose_parallelism=2: cannot combine with ici_tensor_parallelism=2/,
    );
    await refused(
      MIXTRAL,
      { expert: 2, tensor_transpose: 2 },
      /ici_tensor_transpose_parallelism=2: cannot combine with expert parallelism/,
    );
    await refused({ ...MIXTRAL, num_experts: 3 }, { expert: 2 }, /ici_expert_parallelism=2: must divide num_experts \(3\)/);
  });
  it("weights that are not this rank's shard are refused", async () => {
    const a = makeArgs(MIXTRAL, { fsdp: 2 }, "batch_sharded", 2, 1);
    const cfg = moeConfig(a.keys);
    const run = runSpmd(2, (g) =>
      lib.moe.routedMoeForwardParallel(cfg, new lib.parallel.Mesh(g, { fsdp: 2 }), "batch_sharded", a.weights, a.x),
    );
    await expect(run).rejects.toThrow(/\[mesh\] wi_0 is \[4,8,8\], this rank's shard on .*fsdp=2.* is \[4,4,8\] \(meshShardWeights\)/);
    // on a tensor mesh the full expert width (which the shapes alone cannot tell from a slice) is named
    const t = makeArgs(MIXTRAL, { tensor: 2 }, "batch_sharded", 2, 1);
    const full = runSpmd(2, (g) =>
      lib.moe.routedMoeForwardParallel(moeConfig(t.keys), new lib.parallel.Mesh(g, { tensor: 2 }), "batch_sharded", t.weights, t.x),
    );
    await expect(full).rejects.toThrow(/\[mesh\] wi_0 is \[4,8,8\], the full expert width 8; this rank's shard on .*tensor=2.* has 4/);
  });
  it("meshFromConfig: the ici_* keys as given, the remaining ranks on fsdp", async () => {
    const shapes = await runSpmd(4, (g) => Promise.resolve(lib.moe.meshFromConfig(g, moeConfig({ ici_tensor_parallelism: 2 })).shape));
    expect(shapes[0]).toEqual({ data: 1, fsdp: 2, tensor: 2, tensor_transpose: 1, expert: 1 });
    await expect(runSpmd(4, (g) => Promise.resolve(lib.moe.meshFromConfig(g, moeConfig({ ici_tensor_parallelism: 3 }))))).rejects.toThrow(
      /ici_expert_parallelism=1: times ici_tensor_parallelism \(3\)/,
    );
  });
});

describe.skipIf(nativeBackend() === undefined)("the fused ExpertFfn on each rank's slice (native)", () => {
  it.each([
    ["tensor=2", { tensor: 2 }, "batch_sharded", 2],
    ["expert=2 × tensor=2", { expert: 2, tensor: 2 }, "batch_sharded", 4],
    ["fsdp=2", { fsdp: 2 }, "batch_sharded", 4],
  ] as const)("%s: one forward and one backward ExpertFfn per rank", async (_, shape, path, B) => {
    const counting = countingNative([Prim.ExpertFfn, Prim.ExpertFfnBwd]);
    const a = makeArgs({ ...MIXTRAL, mlp_bias: true }, shape, path, B, 3);
    useBackend(counting.backend);
    try {
      await runSpmd(ranksOf(shape), (g) => rankBody(g, a));
    } finally {
      useBackend("ref");
    }
    expect(counting.calls()).toBe(2 * ranksOf(shape));
  });
});
