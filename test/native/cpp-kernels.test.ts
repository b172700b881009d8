// The standalone C++ tests of the kernels (native/test: every operation against double-precision loops, every
// ISA and bf16 path this CPU has, 1-3 threads, bit-identical across thread counts, argument errors), built with
// the machine's g++ and run in their quick mode. Skipped, with the reason in the suite name, without g++.
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");
const gxx = spawnSync("g++", ["--version"], { encoding: "utf8" });
const why = gxx.status === 0 ? undefined : "g++ not found";

describe.skipIf(why !== undefined)(`native C++ kernel tests${why !== undefined ? ` (skipped: ${why})` : ""}`, () => {
  it("native/test/run.sh quick: the three test programs report 0 failures", { timeout: 240_000 }, () => {
    const out = execFileSync("sh", [join(root, "native/test/run.sh"), "quick"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
    const summaries = out.split("\n").filter((l) => / checks, \d+ failures$/.test(l));
    expect(summaries, out.slice(-4000)).toHaveLength(3);
    for (const s of summaries) {
      expect(s, out.slice(-4000)).toMatch(/ 0 failures$/);
      expect(Number(s.split(" ")[0])).toBeGreaterThan(1000);
    }
  });
});
