import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");
const built = existsSync(join(root, "dist/src/index.js"));

describe.skipIf(!built)("README examples run as written (against the built package)", () => {
  it("examples/quickstart.mjs", () => {
    const out = execFileSync(process.execPath, [join(root, "examples/quickstart.mjs")], { encoding: "utf8" });
    expect(out).toMatch(/^output \[ 2, 4, 16 \] lb_loss \d\.\d{5}$/m);
    expect(out).toMatch(/^loss \d+\.\d{5} grad wo \[ 8, 32, 16 \]$/m);
  });
  it("examples/expert-parallel.mjs", () => {
    const out = execFileSync(process.execPath, [join(root, "examples/expert-parallel.mjs")], { encoding: "utf8" });
    expect(out.trim()).toBe("EP=2 output [ 4, 8, 16 ] matches EP=1\nEP=2 x TP=2 output [ 4, 8, 16 ] matches EP=1");
  });
  it("examples/training-loop.mjs: AdamW with recycled gradients lowers the loss", () => {
    const out = execFileSync(process.execPath, [join(root, "examples/training-loop.mjs")], { encoding: "utf8" });
    const m = /^loss (\d+\.\d+) -> (\d+\.\d+) in 20 steps \(decreasing\)$/m.exec(out);
    expect(m, out).not.toBeNull();
    expect(Number(m![2])).toBeLessThan(0.9 * Number(m![1]));
  });
  it("examples/train-mpi.mjs: data × expert parallel training on 2 MPI ranks equals one process", async () => {
    const { mpiUnavailableReason } = await import("../src/parallel/mpi-group.js");
    const out = execFileSync(process.execPath, [join(root, "examples/train-mpi.mjs")], { encoding: "utf8", timeout: 120_000 });
    if (mpiUnavailableReason() !== undefined) {
      expect(out.trim()).toBe(`MPI unavailable: ${mpiUnavailableReason()}`);
      return;
    }
    const m = /^2 MPI ranks: loss (\d+\.\d+) -> (\d+\.\d+) in 15 steps \(decreasing\)$/m.exec(out);
    expect(m, out).not.toBeNull();
    expect(Number(m![2])).toBeLessThan(0.9 * Number(m![1]));
    const d = /^final weights vs one process: gate (\S+), wi_0 (\S+)$/m.exec(out);
    expect(d, out).not.toBeNull();
    expect(Number(d![1])).toBeLessThan(1e-5);
    expect(Number(d![2])).toBeLessThan(1e-5);
  });
  it("moekit check on the golden fixtures", () => {
    const out = execFileSync(process.execPath, [join(root, "bin/moekit.js"), "check", join(root, "fixtures/golden")], { encoding: "utf8" });
    expect(out.trim().split("\n").at(-1)).toBe("28 passed, 0 failed");
  });
});
