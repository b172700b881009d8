// `npm run bench:mpi` (never part of the tests): the MoE layer over MPI ranks of one native thread each.
// Started plainly, it runs itself under `mpirun -np N` for N = 1 and 2 and prints one table; each job's rank 0 prints
// one JSON line. Per rank count: the bench-shape layer's forward and forward+backward (expert parallelism over the
// batch-sharded path, the gradient of wi_0; N = 1 is the single-process layer), and the group's all-to-all and all-gather bandwidth on
// payloads of the size the layer moves (loopback; the all-gather is MPI_Allgatherv, the all-to-all moekit's ragged
// exchange over MPI_Alltoallw).
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { valueAndGradAsync } from "../src/autodiff/grad.js";
import { zeros, type Tensor } from "../src/core/tensor.js";
import { routedMoeForward, routedMoeForwardParallel, shardWeights } from "../src/moe/routed-moe.js";
import { mul } from "../src/ops/elementwise.js";
import { sliceAxis } from "../src/ops/movement.js";
import { sum } from "../src/ops/reduce.js";
import { joinMpi, mpiUnavailableReason } from "../src/parallel/mpi-group.js";
import { mpirunArgs } from "../src/parallel/mpi-launch.js";
import { median } from "./harness.js";
import { BENCH_SHAPE, benchConfig, benchInput, benchWeights, fill } from "./moe-layer.js";

interface RankResult {
  ranks: number;
  forward_s: number;
  step_s: number;
  /** off-rank bytes each rank sent per second, by payload per peer (bytes) */
  allToAllGBps: Record<string, number>;
  allGatherGBps: Record<string, number>;
}

const PAYLOADS = [1 << 16, 1 << 20, 1 << 24];
const seconds = async (f: () => unknown): Promise<number> => {
  const t0 = performance.now();
  await f();
  return (performance.now() - t0) / 1000;
};

async function rank(): Promise<void> {
  const group = joinMpi();
  const N = group.size;
  const s = BENCH_SHAPE;
  const cfg = benchConfig(s, "float32");
  const w = benchWeights(s, "float32");
  const x = benchInput(s);
  const ct = fill([1, s.T, s.D], 1, 9);
  const B = s.T / N;
  const rows = (t: Tensor): Tensor => sliceAxis(t, 1, group.rank * B, (group.rank + 1) * B);
  const mine = N === 1 ? w : shardWeights(w, group.rank, N);
  // the batch is one sequence of T tokens: each rank takes T/N of them
  const forward = async (): Promise<Tensor> =>
    N === 1 ? routedMoeForward(cfg, w, x).output : (await routedMoeForwardParallel(cfg, group, "batch_sharded", mine, rows(x))).output;
  const loss = async (wi0: Tensor): Promise<Tensor> =>
    N === 1
      ? sum(mul(routedMoeForward(cfg, { ...w, wi0 }, x).output, ct))
      : sum(mul((await routedMoeForwardParallel(cfg, group, "batch_sharded", { ...mine, wi0 }, rows(x))).output, rows(ct)));
  const step = (): Promise<unknown> => valueAndGradAsync(loss)(mine.wi0);
  await forward();
  const fwd: number[] = [];
  for (let i = 0; i < 3; i++) {
    await group.barrier();
    fwd.push(await seconds(forward));
  }
  const stp: number[] = [];
  for (let i = 0; i < 2; i++) {
    await group.barrier();
    stp.push(await seconds(step));
  }
  const allToAllGBps: Record<string, number> = {};
  const allGatherGBps: Record<string, number> = {};
  if (N > 1) {
    for (const bytes of PAYLOADS) {
      const part = zeros([bytes / 4]);
      const parts = Array.from({ length: N }, () => part);
      const a2a: number[] = [];
      const ag: number[] = [];
      for (let i = 0; i < 5; i++) {
        await group.barrier();
        a2a.push(await seconds(() => group.allToAll(parts)));
        await group.barrier();
        ag.push(await seconds(() => group.allGather(part)));
      }
      allToAllGBps[bytes] = ((N - 1) * bytes) / median(a2a) / 1e9;
      allGatherGBps[bytes] = ((N - 1) * bytes) / median(ag) / 1e9;
    }
  }
  const r: RankResult = { ranks: N, forward_s: median(fwd), step_s: median(stp), allToAllGBps, allGatherGBps };
  if (group.rank === 0) console.log(JSON.stringify(r));
}

function driver(): void {
  const why = mpiUnavailableReason();
  if (why !== undefined) {
    console.log(`MPI unavailable: ${why}`);
    return;
  }
  const results: RankResult[] = [];
  for (const n of [1, 2]) {
    console.error(`[bench:mpi] ${n} rank(s) of 1 thread, bench shape`);
    const out = execFileSync("mpirun", [...mpirunArgs(n), process.execPath, "--import", "tsx", fileURLToPath(import.meta.url)], {
      encoding: "utf8",
      env: { ...process.env, MOEKIT_THREADS: "1", MOEKIT_BENCH_MPI_RANK: "1" },
      maxBuffer: 1 << 24,
    });
    results.push(JSON.parse(out.trim().split("\n").at(-1)!) as RankResult);
  }
  const [one, two] = [results[0]!, results[1]!];
  const s = BENCH_SHAPE;
  console.log(`\nmoekit bench:mpi — bench shape T=${s.T} D=${s.D} H=${s.H} E=${s.E} K=${s.K}, float32, ranks of 1 native thread`);
  console.log("| ranks | forward ms | forward+backward ms | speed-up (fwd / fwd+bwd) | parallel efficiency (fwd / fwd+bwd) |");
  console.log("|---|---|---|---|---|");
  for (const r of results) {
    const [sf, ss] = [one.forward_s / r.forward_s, one.step_s / r.step_s];
    console.log(
      `| ${r.ranks} | ${(r.forward_s * 1000).toFixed(0)} | ${(r.step_s * 1000).toFixed(0)} | ${sf.toFixed(2)}x / ${ss.toFixed(2)}x | ${((100 * sf) / r.ranks).toFixed(0)}% / ${((100 * ss) / r.ranks).toFixed(0)}% |`,
    );
  }
  console.log("\n| payload per peer | all-to-all (moekit, MPI_Alltoallw) GB/s | all-gather (MPI_Allgatherv) GB/s |");
  console.log("|---|---|---|");
  for (const b of PAYLOADS)
    console.log(
      `| ${b >= 1 << 20 ? `${b >> 20} MiB` : `${b >> 10} KiB`} | ${two.allToAllGBps[b]!.toFixed(2)} | ${two.allGatherGBps[b]!.toFixed(2)} |`,
    );
}

if (process.env.MOEKIT_BENCH_MPI_RANK === "1") await rank();
else driver();
