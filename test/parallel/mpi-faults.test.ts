// MPI jobs in which one rank fails: every other rank must fail within a bounded time, with an error naming the
// rank, never hang. Rank 1 of 3 misbehaves after a first all-to-all (test/parallel/fixtures/mpi-fault-rank.mjs).
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runMpi } from "../../src/parallel/mpi-launch.js";
import { mpiSkipReason, mpiSuiteName } from "../harness/mpi.js";

const FIXTURE = join(import.meta.dirname, "fixtures/mpi-fault-rank.mjs");

/** The job's error and how long it took to fail (the job is killed after 60 s: a hang fails the test). */
async function failure(mode: string): Promise<{ message: string; ms: number }> {
  const t0 = performance.now();
  const e = await runMpi(3, FIXTURE, { mode }, { timeoutMs: 60_000 }).then(
    () => new Error("the job succeeded"),
    (err: Error) => err,
  );
  return { message: e.message, ms: performance.now() - t0 };
}

describe.skipIf(mpiSkipReason !== undefined)(mpiSuiteName("MPI faults: a failing rank fails the job, named"), () => {
  const saved = process.env.MOEKIT_MPI_TIMEOUT;
  beforeAll(() => void (process.env.MOEKIT_MPI_TIMEOUT = "3"));
  afterAll(() => (saved === undefined ? delete process.env.MOEKIT_MPI_TIMEOUT : void (process.env.MOEKIT_MPI_TIMEOUT = saved)));

  it("a rank that throws aborts the job (MPI_Abort from its exit)", async () => {
    const { message, ms } = await failure("throw");
    expect(message).toMatch(/moekit: MPI rank 1 failed: Error: rank one fails on purpose/);
    expect(message).toMatch(/moekit: MPI rank 1 of 3 exits with code 1: aborting the job/);
    expect(ms).toBeLessThan(20_000);
  });

  it("a joinMpi app's uncaught error is printed before the abort (Node emits exit first, and MPI_Abort ended it there)", () => {
    const r = spawnSync(process.execPath, [join(import.meta.dirname, "fixtures/join-throw.mjs")], { encoding: "utf8", timeout: 60_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/Error: thrown after joinMpi\n\s+at /);
    expect(r.stderr).toMatch(/moekit: MPI rank 0 of 1 exits with code 1: aborting the job/);
  });

  it("a rank killed while the others are in an all-to-all ends the job (mpirun names it)", async () => {
    const { message, ms } = await failure("kill");
    expect(message).toMatch(/exit code 137/);
    expect(message).toMatch(/process rank 1 .*exited on signal 9/);
    expect(ms).toBeLessThan(20_000);
  });

  it("a rank calling another collective: the ranks fail naming the mismatch", async () => {
    // every rank sees it; the first to abort may end the others before they print
    const { message } = await failure("mismatch");
    expect(message).toMatch(
      /rank [02] is at call 1 \(allToAll\), rank 1 at call 1 \(allGather\)|rank 1 is at call 1 \(allGather\), rank [02] at call 1 \(allToAll\)/,
    );
  });

  it("a rank calling allReduce where the others call allGather: named as such, not as the allGather it is made of", async () => {
    const { message } = await failure("mismatch-reduce");
    expect(message).toMatch(
      /rank [02] is at call 1 \(allGather\), rank 1 at call 1 \(allReduce\)|rank 1 is at call 1 \(allReduce\), rank [02] at call 1 \(allGather\)/,
    );
  });

  it("a rank that stalls: the others give up after MOEKIT_MPI_TIMEOUT, naming it", async () => {
    const { message, ms } = await failure("stall");
    expect(message).toMatch(/rank (0|2) at call 1 \(allToAll\): no word from rank 1 within 3 s/);
    expect(ms).toBeGreaterThan(3_000);
    expect(ms).toBeLessThan(30_000);
  });
});
