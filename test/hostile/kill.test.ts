// Hostile inputs, item "nothing lost" (crash consistency): `moekit init` and `moekit convert --force` run as child
// processes onto a destination that holds an old complete checkpoint, and are killed with SIGKILL at seeded random
// points of their write (after the "writing" progress line, up to the write's measured length). After
// each kill the destination holds the old checkpoint or the complete new one, byte for byte (the index and every
// shard of a sharded output). SIGKILL runs no cleanup: stray temporaries beside it are allowed, and the next write
// removes them. MOEKIT_KILLS sets the kills per command (default 25: 50 in all).
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { tensor } from "../../src/core/tensor.js";
import { saveShardedSafetensors } from "../../src/io/index.js";
import { removeStaleTemporaries } from "../../src/io/temporaries.js";
import { openMoeLayer } from "../../src/checkpoint/open.js";
import { snapshot, temporariesIn, useScratch } from "./cli-harness.js";

const KILLS = Number(process.env.MOEKIT_KILLS ?? 25);
const SEED = 11;
const CLI = path.join(import.meta.dirname, "children", "cli.ts");
const TINY = ["--preset", "tiny-qwen3-30b-a3b", "--format", "hf", "--family", "qwen3_moe"];

const scratch = useScratch("kill");

/** mulberry32: the kill points, the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

interface Run {
  signal: NodeJS.Signals | null;
  code: number | null;
  /** ms from the "writing" line to the exit (when not killed) */
  writeMs: number;
}

/** Runs the CLI; with `killAfterMs`, sends SIGKILL that long after it prints its "writing" progress line. */
function runCli(args: string[], killAfterMs?: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], { stdio: ["ignore", "ignore", "pipe"] });
    const guard = setTimeout(() => child.kill("SIGKILL"), 60_000);
    let writing: number | undefined;
    let err = "";
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
      if (writing === undefined && err.includes("[moekit] writing")) {
        writing = performance.now();
        if (killAfterMs !== undefined) setTimeout(() => child.kill("SIGKILL"), killAfterMs);
      }
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(guard);
      if (writing === undefined && signal === null) reject(new Error(`no "writing" line (exit ${code}): ${err}`));
      else resolve({ code, signal, writeMs: writing === undefined ? 0 : performance.now() - writing });
    });
  });
}

interface Scenario {
  name: string;
  /** the command, writing to `out` with --force */
  args: (out: string) => string[];
  /** makes the old complete state at `out` */
  makeOld: (out: string) => Promise<void>;
}

describe("SIGKILL at random points of a write onto an existing checkpoint", () => {
  let hfSeed1: string;
  let hfSeed2: string;
  beforeAll(async () => {
    hfSeed1 = scratch("hf-seed1");
    hfSeed2 = scratch("hf-seed2");
    for (const [dir, seed] of [
      [hfSeed1, "1"],
      [hfSeed2, "2"],
    ] as const) {
      fs.mkdirSync(path.dirname(dir), { recursive: true });
      expect((await runCli(["init", ...TINY, "--seed", seed, dir])).code).toBe(0);
    }
  });

  const scenarios: Scenario[] = [
    {
      // 64 experts: a 1.2 MB model.safetensors, so that some kills land while it is written
      name: "moekit init --force (a folder: config.json and model.safetensors)",
      args: (out) => ["init", ...TINY, "--set", "num_experts=64", "--seed", "2", "--force", out],
      makeOld: async (out) => {
        expect((await runCli(["init", ...TINY, "--set", "num_experts=64", "--seed", "1", out])).code).toBe(0);
      },
    },
    {
      name: "moekit convert --force --max-shard-bytes 2000 (an index and 25 shards, over an old index of fewer shards)",
      args: (out) => ["convert", "--from", "hf", "--to", "hf", "--max-shard-bytes", "2000", "--force", hfSeed2, out],
      makeOld: async (out) => {
        expect((await runCli(["convert", "--from", "hf", "--to", "hf", "--max-shard-bytes", "40000", hfSeed1, out])).code).toBe(0);
      },
    },
  ];

  const tally = { old: 0, new: 0, killedMidWrite: 0 };
  it.each(scenarios)(
    `$name: ${KILLS} kills, each leaving the old state (perhaps parked beside, for the next read or write to restore) or the new one`,
    async ({ args, makeOld }) => {
      const dir = scratch("dest");
      fs.mkdirSync(dir, { recursive: true });
      const dest = path.join(dir, "ckpt");
      const oldCopy = path.join(dir, "old-template");
      await makeOld(oldCopy);
      const oldState = snapshot(oldCopy);
      // the complete new state, and how long its write takes
      fs.cpSync(oldCopy, dest, { recursive: true });
      const full = await runCli(args(dest));
      expect(full.code).toBe(0);
      const newState = snapshot(dest);
      expect(newState).not.toEqual(oldState);
      const window = Math.max(5, full.writeMs);
      const random = rng(SEED);
      const seen = { old: 0, new: 0, killedMidWrite: 0 };
      for (let i = 0; i < KILLS; i++) {
        // the old state, and no temporaries of the previous kill (so that those counted below are this run's)
        for (const p of [dest, ...temporariesIn(dir).map((n) => path.join(dir, n))]) fs.rmSync(p, { recursive: true, force: true });
        fs.cpSync(oldCopy, dest, { recursive: true });
        const r = await runCli(args(dest), random() * window);
        expect(r.signal === "SIGKILL" || r.code === 0).toBe(true);
        if (r.signal === "SIGKILL" && temporariesIn(dir).some((n) => n.startsWith(".ckpt."))) seen.killedMidWrite++;
        // killed between the replace's two renames: the old state is whole under its temporary name, and the next
        // read or write of the destination renames it back (removeStaleTemporaries, which openMoeLayer runs)
        if (!fs.existsSync(dest)) {
          const parked = temporariesIn(dir).filter((n) => n.startsWith(".ckpt.") && n.endsWith(".moekit-old"));
          expect(parked.length, `${dest} missing after a kill, with no old state parked beside it`).toBe(1);
          expect(snapshot(path.join(dir, parked[0]!))).toEqual(oldState);
          removeStaleTemporaries(dest);
        }
        const now = snapshot(dest);
        if (JSON.stringify(now) === JSON.stringify(oldState)) seen.old++;
        else {
          expect(now).toEqual(newState);
          seen.new++;
        }
      }
      expect(seen.old + seen.new).toBe(KILLS);
      // the kill points straddle the moment the new state is renamed into place
      expect(seen.old).toBeGreaterThan(0);
      expect(seen.new).toBeGreaterThan(0);
      for (const k of Object.keys(seen) as (keyof typeof seen)[]) tally[k] += seen[k];
    },
  );

  it("some kills landed in the middle of the write (a temporary was left beside the destination)", () => {
    console.error(`[kill] ${JSON.stringify(tally)}`);
    expect(tally.old + tally.new).toBe(2 * KILLS);
    expect(tally.killedMidWrite).toBeGreaterThan(0);
  });

  it("the next write removes what the killed writers left", async () => {
    const dest = scratch("again");
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.cpSync(hfSeed1, dest, { recursive: true });
    await runCli(scenarios[0]!.args(dest), 1);
    expect((await runCli(scenarios[0]!.args(dest))).code).toBe(0);
    expect(fs.readdirSync(path.dirname(dest))).toEqual(["again"]);
  });

  it("a read of a folder whose replace was cut between its renames finds the old checkpoint, renamed back", () => {
    const dest = scratch("cut");
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    const parked = path.join(path.dirname(dest), `.cut.${spawnSync(process.execPath, ["-e", ""]).pid!}-0.moekit-old`);
    fs.cpSync(hfSeed1, parked, { recursive: true });
    const layer = openMoeLayer(dest, undefined);
    expect(Object.keys(layer.params)).toContain("gate/kernel");
    expect(fs.readdirSync(path.dirname(dest))).toEqual(["cut"]);
    expect(snapshot(dest)).toEqual(snapshot(hfSeed1));
  });
});

describe("a replace killed between its two renames (the old folder moved aside, the new one not yet in)", () => {
  const deadPid = (): number => spawnSync(process.execPath, ["-e", ""]).pid!;
  const folder = (name: string): string => {
    const dir = scratch(name);
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    return dir;
  };

  it("the next write renames the old folder back first: without overwrite it is refused, and the old folder is intact", () => {
    const dir = folder("ckpt");
    saveShardedSafetensors(dir, { w: tensor([1, 2]) }, { maxShardBytes: 8 });
    const before = snapshot(dir);
    fs.renameSync(dir, path.join(path.dirname(dir), `.ckpt.${deadPid()}-0.moekit-old`));
    expect(() => saveShardedSafetensors(dir, { w: tensor([3, 4]) }, { maxShardBytes: 8 })).toThrow(/ckpt: already exists and holds/);
    expect(snapshot(dir)).toEqual(before);
    expect(fs.readdirSync(path.dirname(dir))).toEqual(["ckpt"]);
  });

  it("a moved-aside folder whose replacement is in place is removed by the next write", () => {
    const dir = folder("ckpt");
    saveShardedSafetensors(dir, { w: tensor([1, 2]) }, { maxShardBytes: 8 });
    fs.cpSync(dir, path.join(path.dirname(dir), `.ckpt.${deadPid()}-0.moekit-old`), { recursive: true });
    saveShardedSafetensors(dir, { w: tensor([3, 4]) }, { maxShardBytes: 8, overwrite: true });
    expect(fs.readdirSync(path.dirname(dir))).toEqual(["ckpt"]);
  });
});
