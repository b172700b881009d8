// One rank of `npm run bench:mpi`: the bench-shape layer's forward and forward+backward (the gradient of wi_0) on this
// rank's experts and T/N tokens (expert parallelism over the batch-sharded path; one rank is the single-process
// layer), timed between barriers: the median of 5 forwards and of 3 steps, each after an untimed one. Plain JavaScript on the built package, so that worker-thread ranks (runWorkers),
// MPI ranks (runMpi) and a single process all run the same code.
import { performance } from "node:perf_hooks";
import { uniformInto } from "./uniform.mjs";
import { moeConfig, parallel, routedMoeForward, setNativeThreads, Tensor, valueAndGradAsync, zeros, moe, ops } from "moekit";

const fill = (shape, a, seed) => new Tensor(uniformInto(zeros([shape.reduce((x, y) => x * y, 1)]).data, a, seed), shape, "float32");

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const seconds = async (f) => {
  const t0 = performance.now();
  await f();
  return (performance.now() - t0) / 1000;
};

/** args: { shape: {T, D, H, E, K}, keys (the layer's MaxText keys), threads, bandwidthPayloads? } → { forward_s, step_s, allToAllGBps, allGatherGBps, pointToPointGBps } */
export default async function rank(group, { shape: s, keys, threads, bandwidthPayloads = [] }) {
  setNativeThreads(threads);
  const N = group.size;
  const cfg = moeConfig(keys);
  const e = s.E / N;
  // this rank's experts only (their values do not change the routing, which the gate and the input decide)
  const [uD, uH] = [Math.sqrt(3 / s.D), Math.sqrt(3 / s.H)];
  const w = {
    gateKernel: fill([s.D, s.E], uD, 1),
    wi0: fill([e, s.D, s.H], uD, 2 + 10 * group.rank),
    wi1: fill([e, s.D, s.H], uD, 3 + 10 * group.rank),
    wo: fill([e, s.H, s.D], uH, 4 + 10 * group.rank),
  };
  const B = s.T / N;
  const mine = (t) => ops.sliceAxis(t, 1, group.rank * B, (group.rank + 1) * B);
  const x = mine(fill([1, s.T, s.D], Math.sqrt(3), 5));
  const ct = mine(fill([1, s.T, s.D], 1, 9));
  const layer = async (wi0) =>
    N === 1
      ? routedMoeForward(cfg, { ...w, wi0 }, x).output
      : (await moe.routedMoeForwardParallel(cfg, group, "batch_sharded", { ...w, wi0 }, x)).output;
  const forward = () => layer(w.wi0);
  const step = () => valueAndGradAsync(async (wi0) => ops.sum(ops.mul(await layer(wi0), ct)))(w.wi0);

  // one untimed run of each first: it maps the storage pool's blocks and the kernels' workspaces
  const timed = async (f, runs) => {
    await f();
    const t = [];
    for (let i = 0; i < runs; i++) {
      await group.barrier();
      t.push(await seconds(f));
    }
    return median(t);
  };
  const forward_s = await timed(forward, 5);
  const step_s = await timed(step, 3);
  // bytes each rank sends to others per second: the group's collectives, and MPI's own point-to-point exchange between
  // pairs of ranks (rank r and r xor 1) where the group has one
  const allToAllGBps = {};
  const allGatherGBps = {};
  const pointToPointGBps = {};
  for (const bytes of N > 1 ? bandwidthPayloads : []) {
    const part = zeros([bytes / 4]);
    const parts = Array.from({ length: N }, () => part);
    const got = zeros([bytes / 4]);
    const [a2a, ag, p2p] = [[], [], []];
    for (let i = 0; i < 5; i++) {
      await group.barrier();
      a2a.push(await seconds(() => group.allToAll(parts)));
      await group.barrier();
      ag.push(await seconds(() => group.allGather(part)));
      if (group.sendRecv !== undefined && N % 2 === 0) {
        await group.barrier();
        p2p.push(await seconds(() => group.sendRecv(group.rank ^ 1, part.data, got.data)));
      }
    }
    allToAllGBps[bytes] = ((N - 1) * bytes) / median(a2a) / 1e9;
    allGatherGBps[bytes] = ((N - 1) * bytes) / median(ag) / 1e9;
    if (p2p.length > 0) pointToPointGBps[bytes] = bytes / median(p2p) / 1e9;
  }
  return { forward_s, step_s, allToAllGBps, allGatherGBps, pointToPointGBps };
}

// `node bench/layer-rank.mjs single|workers|mpi N THREADS '<shape json>' '<keys json>' '<payloads json>'`: one configuration, one JSON
// line on stdout (the slowest rank's times)
if (import.meta.url === `file://${process.argv[1]}`) {
  const [mode, n, threads, shapeJson, keysJson, payloadsJson = "[]"] = process.argv.slice(2);
  const args = {
    shape: JSON.parse(shapeJson),
    keys: JSON.parse(keysJson),
    threads: Number(threads),
    bandwidthPayloads: JSON.parse(payloadsJson),
  };
  const here = new URL(import.meta.url);
  let results;
  if (mode === "single") results = [await rank(parallel.createLocalGroup(1)[0], args)];
  else if (mode === "workers") results = await parallel.runWorkers(Number(n), here, args);
  else results = await parallel.runMpi(Number(n), here, args);
  const slowest = (k) => Math.max(...results.map((r) => r[k]));
  console.log(JSON.stringify({ ...results[0], forward_s: slowest("forward_s"), step_s: slowest("step_s") }));
}
