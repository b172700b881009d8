import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadCase } from "../../src/cli/golden/case.js";
import { runCase } from "../../src/cli/golden/run.js";
import { testBackends, withBackend } from "../harness/backends.js";

const caseFiles = (dir: string): string[] =>
  readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort();
const fixtures = join(import.meta.dirname, "../../fixtures");
// golden: forward, losses and gradients; golden-quant: quantized experts, forward only; crosscheck-*: more configs from
// independent NumPy references (tools/crosscheck-float with gradients, tools/crosscheck-quant forward only)
const suites: [string, number][] = [
  ["golden", 28],
  ["golden-quant", 6],
  ["crosscheck-float", 60],
  ["crosscheck-quant", 40],
];

describe.each(testBackends().flatMap((b) => suites.map(([s, n]) => [b, s, n] as const)))(
  "golden cases on the %s backend, fixtures/%s (float64 truth, tolerance 1e-4·max(1,|expected|))",
  (backend, suite, atLeast) => {
    const dir = join(fixtures, suite);
    const files = caseFiles(dir);
    it("fixtures are present", () => expect(files.length).toBeGreaterThanOrEqual(atLeast));
    it.each(files)("%s", async (f) => {
      const r = await withBackend(backend, () => runCase(loadCase(join(dir, f))));
      expect(r.error).toBeUndefined();
      const failing = r.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.error} ${c.note ?? ""}`);
      expect(failing).toEqual([]);
      expect(r.checks.length).toBe(loadCase(join(dir, f)).expected_names.length);
    });
  },
);
