// Running a shared Group suite on MPI ranks: one `mpirun` job per rank count runs every case of that count in
// turn (test/parallel/fixtures/mpi-batch.mjs), so a suite costs one job start per rank count, not one per case.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { mpiUnavailableReason } from "../../src/parallel/mpi-group.js";
import { mpirunMissing, runMpi } from "../../src/parallel/mpi-launch.js";

const root = join(import.meta.dirname, "../..");

/** Why the MPI suites are skipped here, or undefined when they run (CI installs Open MPI, so they run there). */
export const mpiSkipReason: string | undefined = existsSync(join(root, "dist/src/parallel/mpi-entry.js"))
  ? (mpiUnavailableReason() ?? mpirunMissing())
  : "the package is not built (npm run build)";

/** The suite's name with the skip reason, so that a skipped MPI suite says why. */
export const mpiSuiteName = (name: string): string => (mpiSkipReason === undefined ? name : `${name} (skipped: ${mpiSkipReason})`);

/**
 * `run(c)`: every rank's result of case `c`, from the job of `ranks(c)` ranks that runs all `cases` of that
 * count with `module`'s default export (started on the first request, bounded by `timeoutMs`).
 */
export function mpiBatches<C, R>(
  module: string,
  cases: readonly C[],
  ranks: (c: C) => number,
  timeoutMs = 100_000,
): (c: C) => Promise<R[]> {
  const jobs = new Map<number, Promise<R[][]>>();
  return async (c) => {
    const n = ranks(c);
    const mine = cases.filter((x) => ranks(x) === n);
    let job = jobs.get(n);
    if (job === undefined) {
      job = runMpi<R[]>(n, join(import.meta.dirname, "../parallel/fixtures/mpi-batch.mjs"), { module, cases: mine }, { timeoutMs });
      jobs.set(n, job);
    }
    const i = mine.indexOf(c);
    if (i < 0) throw new Error("mpiBatches: a case not in the list");
    return (await job).map((perRank) => perRank[i]!);
  };
}
