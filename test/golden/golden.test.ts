import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadCase } from "../../src/cli/golden/case.js";
import { runCase } from "../../src/cli/golden/run.js";
import { testBackends, withBackend } from "../harness/backends.js";

const dir = join(import.meta.dirname, "../../fixtures/golden");
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .sort();

describe.each(testBackends())("golden cases on the %s backend (float64 truth, tolerance 1e-4·max(1,|expected|))", (backend) => {
  it("fixtures are present", () => expect(files.length).toBeGreaterThanOrEqual(28));
  it.each(files)("%s", async (f) => {
    const r = await withBackend(backend, () => runCase(loadCase(join(dir, f))));
    expect(r.error).toBeUndefined();
    const failing = r.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.error} ${c.note ?? ""}`);
    expect(failing).toEqual([]);
    expect(r.checks.length).toBe(loadCase(join(dir, f)).expected_names.length);
  });
});
