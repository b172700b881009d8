import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Prim } from "../../src/prims/prims.js";
import { shapeRules } from "../../src/prims/shape-rules.js";
import { vjpRules } from "../../src/autodiff/vjp-rules.js";
import { differentiable, FAMILIES } from "../harness/families.js";

const here = path.dirname(fileURLToPath(import.meta.url));

describe("primitive test coverage", () => {
  it("every primitive belongs to exactly one family of test/prims", () => {
    const listed = Object.values(FAMILIES).flat();
    expect([...listed].sort()).toEqual(Object.values(Prim).sort());
    expect(new Set(listed).size).toBe(listed.length);
  });

  it("every family has its test file (which gradient-checks each differentiable member)", () => {
    for (const family of Object.keys(FAMILIES)) expect(fs.existsSync(path.join(here, `${family}.test.ts`)), family).toBe(true);
  });

  it("every primitive has a shape rule and a VJP entry (null = not differentiable)", () => {
    for (const p of Object.values(Prim)) {
      expect(typeof shapeRules[p], p).toBe("function");
      expect(p in vjpRules, p).toBe(true);
    }
    // the non-differentiable set is pinned: adding a VJP rule (or removing one) must update the tests
    const nonDiff = Object.values(Prim).filter((p) => vjpRules[p] === null);
    expect(nonDiff.sort()).toEqual(
      [
        Prim.FloorDiv,
        Prim.Mod,
        Prim.Less,
        Prim.LessEqual,
        Prim.Equal,
        Prim.Greater,
        Prim.Iota,
        Prim.Argsort,
        Prim.Bincount,
        Prim.ExpertFfnBwd,
        Prim.Quantize,
        Prim.QuantizedGmm,
        Prim.AdamwStep,
        Prim.SgdStep,
      ].sort(),
    );
    expect(differentiable(Object.values(Prim)).length).toBe(Object.values(Prim).length - nonDiff.length);
  });
});
