// Every Group collective (allGather, allToAll, allReduce, reduceScatter) on the whole group and on each axis of
// a mesh, and the adjoint identity of each differentiable collective, on every Group implementation.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runSpmd } from "../../src/parallel/local-group.js";
import { runWorkers } from "../../src/parallel/worker-group.js";
import { Mesh, MESH_AXES, type MeshAxis } from "../../src/parallel/mesh.js";
import type { Group } from "../../src/parallel/group.js";
import { createLocalGroup } from "../../src/parallel/local-group.js";
import * as lib from "../../src/index.js";
import { mpiBatches, mpiSkipReason, mpiSuiteName } from "../harness/mpi.js";
// @ts-expect-error a plain .mjs fixture shared with the worker ranks
import { makeCollectives } from "./fixtures/collectives-body.mjs";
// @ts-expect-error a plain .mjs fixture shared with the worker ranks
import { makeMismatch } from "./fixtures/mismatch-body.mjs";

type Shape = Partial<Record<MeshAxis, number>>;
interface GroupRun {
  rank: number;
  size: number;
  allGather: number[][];
  allToAll: number[][];
  allReduce: number[];
  reduceScatter: number[];
}
interface RankRun {
  coords: Record<MeshAxis, number>;
  world: GroupRun;
  axes: Record<MeshAxis, GroupRun>;
  adjoint: Record<string, { ax_y: number; x_aty: number }>;
}

const body = makeCollectives(lib) as (g: Group, a: { shape: Shape }) => Promise<RankRun>;
const built = existsSync(join(import.meta.dirname, "../../dist/src/parallel/worker-entry.js"));

/** rank r's tensor, as the fixture builds it (row-major [4, 2]) */
const mine = (r: number): number[] => [r + 1, 10 * r, 0.5 * r, 1 - r, 3 + r, 7 * r, r * r, 100 + r];

/** world ranks that share every coordinate but `axis`, by their coordinate on it (row-major, expert fastest) */
function members(coords: Record<MeshAxis, number>, shape: Shape, axis: MeshAxis): number[] {
  const size = (a: MeshAxis): number => shape[a] ?? 1;
  return Array.from({ length: size(axis) }, (_, i) => MESH_AXES.reduce((r, a) => r * size(a) + (a === axis ? i : coords[a]), 0));
}

function expectGroup(run: GroupRun, world: number[]): void {
  const n = world.length;
  expect(run.size).toBe(n);
  expect(world[run.rank]).toBeDefined();
  expect(run.allGather).toEqual(world.map(mine));
  // rank k of the group sent [10·k + j] to its rank j
  expect(run.allToAll).toEqual(world.map((_, k) => [10 * k + run.rank]));
  const sum = (rows: number[][]): number[] => rows[0]!.map((_, i) => rows.reduce((a, r) => a + r[i]!, 0));
  expect(run.allReduce).toEqual(sum(world.map(mine)).map(Math.fround));
  const chunk = 8 / n;
  expect(run.reduceScatter).toEqual(sum(world.map((r) => mine(r).slice(run.rank * chunk, (run.rank + 1) * chunk))).map(Math.fround));
}

const SHAPES: Shape[] = [{ tensor: 2 }, { expert: 2, tensor: 2 }, { fsdp: 2, tensor: 2 }, { data: 2, tensor_transpose: 2 }, { tensor: 4 }];
const ranksOf = (s: Shape): number => Object.values(s).reduce((a, b) => a * b, 1);
const CASES = SHAPES.map((shape) => ({ shape }));
const mpi = mpiBatches<{ shape: Shape }, RankRun>(join(import.meta.dirname, "fixtures/collectives-rank.mjs"), CASES, (c) =>
  ranksOf(c.shape),
);
const GROUPS: [string, (n: number, shape: Shape) => Promise<RankRun[]>][] = [
  ["in-process (runSpmd)", (n, shape) => runSpmd(n, (g) => body(g, { shape }))],
  [
    "worker threads (runWorkers)",
    (n, shape) => runWorkers<RankRun>(n, join(import.meta.dirname, "fixtures/collectives-rank.mjs"), { shape }),
  ],
  [mpiSuiteName("MPI ranks (mpirun, 2 and 4 ranks)"), (_, shape) => mpi(CASES.find((c) => c.shape === shape)!)],
];

describe.each(GROUPS)("collectives, %s", (name, run) => {
  describe
    .skipIf((name.startsWith("worker") && !built) || (name.startsWith("MPI") && mpiSkipReason !== undefined))
    .each(SHAPES.map((s) => [JSON.stringify(s), s] as const))("mesh %s", (_, shape) => {
    it("whole group and every mesh axis: allGather, allToAll, allReduce, reduceScatter; adjoint identities", async () => {
      const n = Object.values(shape).reduce((a, b) => a * b, 1);
      const ranks = await run(n, shape);
      ranks.forEach((r, rank) => {
        expectGroup(
          r.world,
          Array.from({ length: n }, (_, i) => i),
        );
        expect(r.world.rank).toBe(rank);
        for (const a of MESH_AXES) {
          const m = members(r.coords, shape, a);
          expect(m[r.axes[a].rank]).toBe(rank);
          expectGroup(r.axes[a], m);
        }
      });
      for (const op of Object.keys(ranks[0]!.adjoint)) {
        const ax = ranks.reduce((s, r) => s + r.adjoint[op]!.ax_y, 0);
        const aty = ranks.reduce((s, r) => s + r.adjoint[op]!.x_aty, 0);
        expect(Math.abs(ax - aty), op).toBeLessThan(1e-3);
        expect(Math.abs(ax), op).toBeGreaterThan(1);
      }
    });
  });
});

describe("mesh errors", () => {
  it("axis sizes that do not multiply to the group size are refused", () => {
    expect(() => new Mesh(createLocalGroup(4)[0]!, { tensor: 3 })).toThrow(/multiply to 3, the group has 4 ranks/);
    expect(() => new Mesh(createLocalGroup(2)[0]!, { expert: 0, tensor: 2 })).toThrow(/expert must be a positive integer/);
  });
});

// the reductions and the barrier are built from allGather and allToAll: each is compared under its own name
const MISMATCH = join(import.meta.dirname, "fixtures/mismatch-rank.mjs");
const mismatchBody = { default: makeMismatch(lib) as (g: Group, a: unknown) => Promise<unknown> };
describe("ranks calling different collectives fail, naming both", () => {
  const pairs = [
    ["allGather", "allReduce"],
    ["allReduce", "reduceScatter"],
    ["allToAll", "reduceScatter"],
    ["barrier", "allGather"],
  ] as const;
  it.each(pairs)("in-process: %s against %s, on the group and on a mesh axis", async (a, b) => {
    const whole = runSpmd(2, (g) => mismatchBody.default(g, { ops: [a, b] }));
    await expect(whole).rejects.toThrow(new RegExp(`collective mismatch at call 0: rank \\d called (${a}|${b}), another rank (${a}|${b})`));
    const axis = runSpmd(4, (g) => mismatchBody.default(g, { ops: [a, b, a, b], shape: { tensor: 2, expert: 2 }, axis: "expert" }));
    await expect(axis).rejects.toThrow(/collective mismatch/);
  });
  it("in-process: a sum over ranks of different shapes or dtypes fails on every rank (it broadcast, or widened, silently)", async () => {
    const shapes = runSpmd(2, (g) => g.allReduce(lib.zeros(g.rank === 0 ? [4] : [1], "float32")));
    await expect(shapes).rejects.toThrow(
      "[allReduce] rank 0 gave float32[4], rank 1 gave float32[1]: a sum over ranks needs the same shape and dtype on every rank",
    );
    const dtypes = runSpmd(2, (g) => g.reduceScatter(lib.zeros([4], g.rank === 0 ? "float32" : "float64")));
    await expect(dtypes).rejects.toThrow("[reduceScatter] rank 0 gave float32[2], rank 1 gave float64[2]");
  });
  it("in-process: a rank that returns while another waits in a collective fails the run, naming it (it hung)", async () => {
    await expect(runSpmd(2, (g) => mismatchBody.default(g, { ops: ["allGather", "return"] }))).rejects.toThrow(
      /rank 1 returned while another rank waits in call 0 \(allGather\)|rank 0 calls allGather \(call 0\) after rank 1 returned/,
    );
  });
  it.skipIf(!built)("worker threads: a rank that returns while another waits fails the run, naming it", async () => {
    await expect(runWorkers(2, MISMATCH, { ops: ["allGather", "return"] })).rejects.toThrow(
      "[group] rank 1 returned (or failed) while this rank waits for its part of a collective",
    );
  });
  it.skipIf(!built)("worker threads: a rank that throws is named with its own error, not its peer's", async () => {
    for (let i = 0; i < 3; i++)
      await expect(runWorkers(2, MISMATCH, { ops: ["allGather", "throw"] })).rejects.toThrow("rank 1: Error: rank 1 fails on purpose");
  });
  it.skipIf(!built)("worker threads: a module without a default export function is named", async () => {
    await expect(runWorkers(2, join(import.meta.dirname, "fixtures/mismatch-body.mjs"))).rejects.toThrow(
      /mismatch-body\.mjs has no default export function \(group, args\) => result/,
    );
  });
  it.skipIf(!built).each(pairs)("worker threads: %s against %s", async (a, b) => {
    await expect(runWorkers(2, MISMATCH, { ops: [a, b] })).rejects.toThrow(
      new RegExp(`collective mismatch on rank \\d: call 0 is (${a}|${b}), rank \\d sent (${a}|${b}) #0`),
    );
  });
});
