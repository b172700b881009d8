// moekit run --ranks N: the layer with expert parallelism over N MPI ranks reports what one rank reports.
import { spawn, spawnSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { mpiSkipReason, mpiSuiteName } from "../harness/mpi.js";

const bin = join(import.meta.dirname, "../../bin/moekit.js");

function run(args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, [bin, "run", "--json", ...args], {
    encoding: "utf8",
    env: { ...process.env, MOEKIT_BACKEND: "ref" },
    timeout: 60_000,
  });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe.skipIf(mpiSkipReason !== undefined)(mpiSuiteName("moekit run --ranks (MPI)"), () => {
  it.each([2, 4])("--ranks %i: the same output, routing and losses as one rank", (ranks) => {
    const args = ["--preset", "tiny-mixtral-8x7b", "--batch", "4", "--set", "load_balance_loss_weight=0.01"];
    const one = run(args);
    const many = run([...args, "--ranks", String(ranks)]);
    expect(many.ranks).toBe(ranks);
    expect(many.output).toEqual(one.output);
    expect(many.tokensPerExpert).toEqual(one.tokensPerExpert);
    expect(many.lbLoss as number).toBeCloseTo(one.lbLoss as number, 6);
  });

  it.each([
    ["tiny-deepseek3-671b", 2],
    ["tiny-gemma4-26b", 4],
  ])("%s (RoutedAndSharedMoE) on %i ranks: the shared experts on each rank's rows, the output of one rank", (preset, ranks) => {
    const args = ["--preset", String(preset), "--batch", "4"];
    const one = run(args);
    const many = run([...args, "--ranks", String(ranks)]);
    expect(many.layer).toBe(preset);
    expect(many.parameters).toBe(one.parameters);
    expect(many.output).toEqual(one.output);
    expect(many.tokensPerExpert).toEqual(one.tokensPerExpert);
  });

  it.each([2, 4])("--ranks %i on the dense capacity path: the same dropped assignments as one rank (not rank 0's alone)", (ranks) => {
    const args = ["--preset", "tiny-mixtral-8x7b", "--batch", "4", "--set", "sparse_matmul=false", "--set", "capacity_factor=1.0"];
    const one = run(args);
    const many = run([...args, "--ranks", String(ranks)]);
    expect(one.droppedAssignments as number).toBeGreaterThan(0);
    expect(many.droppedAssignments).toBe(one.droppedAssignments);
    expect(many.output).toEqual(one.output);
  });

  it("SIGTERM to the launching process ends mpirun and its ranks too (they ran on, orphaned), exit 143", async () => {
    const args = [bin, "run", "--preset", "tiny-mixtral-8x7b", "--ranks", "2", "--seq", "64", "--repeat", "1000000"];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    // the ranks print "forward on x" once they run
    for (let i = 0; i < 600 && !err.includes("forward on x"); i++) await sleep(100);
    expect(err).toContain("forward on x");
    // the launcher's child (mpirun), from /proc: pid whose stat's 4th field is the launcher's pid
    const mpirun = readdirSync("/proc")
      .filter((d) => /^\d+$/.test(d))
      .find((d) => {
        try {
          return (
            readFileSync(`/proc/${d}/stat`, "utf8")
              .replace(/^.*\) /, "")
              .split(" ")[1] === String(child.pid)
          );
        } catch {
          return false;
        }
      });
    expect(mpirun).toBeDefined();
    child.kill("SIGTERM");
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(code).toBe(143);
    const alive = (): boolean => {
      try {
        return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${mpirun!}/stat`, "utf8")); // gone, or a zombie
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 100 && alive(); i++) await sleep(100);
    expect(alive()).toBe(false); // mpirun (and with it the ranks) gone
  });

  it("--batch not divisible by --ranks is refused, naming both", () => {
    const r = spawnSync(process.execPath, [bin, "run", "--preset", "tiny-mixtral-8x7b", "--batch", "3", "--ranks", "2"], {
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--batch 3 must be divisible by --ranks 2/);
  });
});
