// Ranks started with different configs or weight shapes fail at start, naming the difference and the rank.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { agreeAcrossRanks } from "../../src/parallel/agree.js";
import { runSpmd } from "../../src/parallel/local-group.js";
import { runMpi } from "../../src/parallel/mpi-launch.js";
import { mpiSkipReason, mpiSuiteName } from "../harness/mpi.js";

const layer = (numExperts: number, dims: number[]): unknown => ({ config: { numExperts, sparse: true }, weights: { wi_0: dims } });

describe("agreeAcrossRanks", () => {
  it("equal values pass on every rank", async () => {
    await expect(runSpmd(3, (g) => agreeAcrossRanks(g, "the layer", layer(4, [4, 8, 8])))).resolves.toHaveLength(3);
  });

  it("a config key and a weight shape that differ are named, with the ranks", async () => {
    const run = runSpmd(3, (g) => agreeAcrossRanks(g, "the layer", g.rank === 2 ? layer(8, [8, 8, 8]) : layer(4, [4, 8, 8])));
    await expect(run).rejects.toThrow(
      "[group] the ranks disagree on the layer: config.numExperts is 4 on rank 0, 8 on rank 2; weights.wi_0 is [4,8,8] on rank 0, [8,8,8] on rank 2",
    );
  });

  it("a key one rank lacks is named", async () => {
    const run = runSpmd(2, (g) => agreeAcrossRanks(g, "config", g.rank === 0 ? { a: 1 } : { a: 1, b: "x" }));
    await expect(run).rejects.toThrow(/b is absent on rank 0, "x" on rank 1/);
  });
});

describe.skipIf(mpiSkipReason !== undefined)(mpiSuiteName("agreeAcrossRanks on MPI ranks"), () => {
  it("every rank agrees, or the job fails at start naming the difference", async () => {
    const fixture = join(import.meta.dirname, "fixtures/mpi-agree-rank.mjs");
    await expect(runMpi(2, fixture, { differ: false })).resolves.toEqual(["agreed", "agreed"]);
    await expect(runMpi(2, fixture, { differ: true }, { timeoutMs: 60_000 })).rejects.toThrow(
      /rank 1 failed: MoeError: \[group\] the ranks disagree on the layer: config.numExperts is 4 on rank 0, 8 on rank 1/,
    );
  });
});
