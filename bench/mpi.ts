// `npm run bench:mpi` (never part of the tests): the MoE layer over ranks of one native thread each, beside one process.
// Each configuration runs bench/layer-rank.mjs in a fresh process: one process with 1 and with 2 native threads, 2
// worker-thread ranks (runWorkers), and 2 and 4 MPI ranks (runMpi) of 1 thread each, at the bench shape (expert parallelism
// over the batch-sharded path; the gradient of wi_0). The table gives each one's forward and forward+backward, their
// ratio to one process of 2 threads (the same cores), and the group's all-to-all and all-gather bandwidth by payload
// on loopback beside MPI's own point-to-point bandwidth. Needs the built package (`npm run build`).
import { execFileSync } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { mpiUnavailableReason } from "../src/parallel/mpi-group.js";
import { BENCH_SHAPE, benchKeys } from "./moe-layer.js";

interface RankResult {
  forward_s: number;
  step_s: number;
  /** off-rank bytes each rank sent per second, by payload per peer (bytes) */
  allToAllGBps: Record<string, number>;
  allGatherGBps: Record<string, number>;
  /** MPI_Isend / MPI_Irecv between pairs of ranks */
  pointToPointGBps: Record<string, number>;
}

const PAYLOADS = [1 << 16, 1 << 20, 1 << 24];
const RANK = fileURLToPath(new URL("./layer-rank.mjs", import.meta.url));

function measure(label: string, mode: "single" | "workers" | "mpi", ranks: number, threads: number): RankResult {
  console.error(`[bench:mpi] ${label}`);
  const payloads = mode === "mpi" ? PAYLOADS : [];
  const out = execFileSync(
    process.execPath,
    [
      RANK,
      mode,
      String(ranks),
      String(threads),
      JSON.stringify(BENCH_SHAPE),
      JSON.stringify(benchKeys(BENCH_SHAPE, "float32")),
      JSON.stringify(payloads),
    ],
    { encoding: "utf8", env: { ...process.env, MOEKIT_THREADS: String(threads) }, maxBuffer: 1 << 24 },
  );
  return JSON.parse(out.trim().split("\n").at(-1)!) as RankResult;
}

function main(): void {
  const why = mpiUnavailableReason();
  // label, cores used, result
  const rows: [string, number, RankResult][] = [
    ["1 process, 1 thread", 1, measure("1 process, 1 thread", "single", 1, 1)],
    ["1 process, 2 threads", 2, measure("1 process, 2 threads", "single", 1, 2)],
    ["2 worker-thread ranks x 1 thread", 2, measure("2 worker-thread ranks", "workers", 2, 1)],
  ];
  const cores = availableParallelism();
  if (why === undefined) {
    rows.push(["2 MPI ranks x 1 thread", Math.min(2, cores), measure("2 MPI ranks", "mpi", 2, 1)]);
    rows.push([
      `4 MPI ranks x 1 thread${cores < 4 ? ` (on ${cores} cores)` : ""}`,
      Math.min(4, cores),
      measure("4 MPI ranks", "mpi", 4, 1),
    ]);
  }
  const [one, base] = [rows[0]![2], rows[1]![2]];
  const s = BENCH_SHAPE;
  console.log(`\nmoekit bench:mpi — bench shape T=${s.T} D=${s.D} H=${s.H} E=${s.E} K=${s.K}, float32`);
  console.log(
    "| configuration | forward ms | forward+backward ms | time / 1 process of 2 threads (fwd / fwd+bwd) | parallel efficiency over 1 thread (fwd / fwd+bwd) |",
  );
  console.log("|---|---|---|---|---|");
  for (const [label, cores, r] of rows) {
    const [ef, es] = [one.forward_s / r.forward_s / cores, one.step_s / r.step_s / cores];
    console.log(
      `| ${label} | ${(r.forward_s * 1000).toFixed(0)} | ${(r.step_s * 1000).toFixed(0)} | ${(r.forward_s / base.forward_s).toFixed(2)}x / ${(r.step_s / base.step_s).toFixed(2)}x | ${(100 * ef).toFixed(0)}% / ${(100 * es).toFixed(0)}% |`,
    );
  }
  if (why !== undefined) {
    console.log(`\nMPI unavailable: ${why}`);
    return;
  }
  const [two, four] = [rows[3]![2], rows[4]![2]];
  console.log("\nBytes each rank sends to the others per second, by payload per peer (loopback):");
  console.log(
    "| payload per peer | ranks | all-to-all (moekit: headers + MPI_Ialltoallw) GB/s | all-gather (MPI_Iallgatherv) GB/s | MPI point-to-point (Isend/Irecv pairs) GB/s |",
  );
  console.log("|---|---|---|---|---|");
  const gb = (r: RankResult, k: "allToAllGBps" | "allGatherGBps" | "pointToPointGBps", b: number): string => r[k][b]?.toFixed(2) ?? "-";
  for (const [n, r] of [
    [2, two],
    [4, four],
  ] as const) {
    for (const b of PAYLOADS) {
      const size = b >= 1 << 20 ? `${b >> 20} MiB` : `${b >> 10} KiB`;
      console.log(`| ${size} | ${n} | ${gb(r, "allToAllGBps", b)} | ${gb(r, "allGatherGBps", b)} | ${gb(r, "pointToPointGBps", b)} |`);
    }
  }
}

main();
