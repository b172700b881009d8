import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadCase } from "../../src/golden/case.js";
import { runCase } from "../../src/golden/run.js";

const dir = join(import.meta.dirname, "../../fixtures/golden");
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .sort();

describe("golden cases (../shared/golden, float64 truth, tolerance 1e-4·max(1,|expected|))", () => {
  it("fixtures are present", () => expect(files.length).toBeGreaterThanOrEqual(28));
  it.each(files)("%s", async (f) => {
    const r = await runCase(loadCase(join(dir, f)));
    expect(r.error).toBeUndefined();
    const failing = r.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.error} ${c.note ?? ""}`);
    expect(failing).toEqual([]);
    expect(r.checks.length).toBe(loadCase(join(dir, f)).expected_names.length);
  });
});
