import { join } from "node:path";
import { expect, it } from "vitest";
import { BUDGET, countLines } from "../tools/sz.js";

it("core + prims + autodiff stay within the line budget (raise BUDGET in a reviewed commit)", () => {
  const total = Object.values(countLines(join(import.meta.dirname, ".."))).reduce((a, b) => a + b, 0);
  expect(total).toBeGreaterThan(100);
  expect(total).toBeLessThanOrEqual(BUDGET);
});
