// docs/architecture.md's primitive table is read against the code, so that it cannot go stale: one row per `Prim`
// member, its VJP column against vjpRules, its native column against the native backend's supports().
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { Prim } from "../../src/prims/prims.js";
import { vjpRules } from "../../src/autodiff/vjp-rules.js";

const root = join(import.meta.dirname, "..", "..");
const doc = "docs/architecture.md";
const text = readFileSync(join(root, doc), "utf8");

interface Row {
  member: string;
  cells: string[];
  shapeRule: string;
  refKernel: string;
  native: string;
  vjp: string;
}

const rows: Row[] = [...text.matchAll(/^\| `Prim\.(\w+)` \|(.*)\|\s*$/gm)].map((m) => {
  const cells = m[2]!.split(" | ").map((c) => c.trim());
  const [shapeRule = "", refKernel = "", native = "", vjp = ""] = cells;
  return { member: m[1]!, cells, shapeRule, refKernel, native, vjp };
});

/** The `Prim` members that native/kernels.ts's supports() can say yes to (its `case Prim.X:` labels). */
function nativeCases(): Set<string> {
  const src = readFileSync(join(root, "src/backends/native/kernels.ts"), "utf8");
  const start = src.indexOf("export function supports");
  const end = src.indexOf("\n}\n", start);
  expect(start, "supports() in src/backends/native/kernels.ts").toBeGreaterThanOrEqual(0);
  return new Set([...src.slice(start, end).matchAll(/case Prim\.(\w+):/g)].map((m) => m[1]!));
}

const firstFile = (cell: string): string | undefined => /^([\w-]+\.ts)\b/.exec(cell)?.[1];

describe("docs/architecture.md", () => {
  it("the primitive table has one row per Prim member, and no other", () => {
    for (const r of rows) expect(r.cells, `row of Prim.${r.member}`).toHaveLength(4);
    const members = rows.map((r) => r.member);
    expect(new Set(members).size, "no member listed twice").toBe(members.length);
    expect([...members].sort()).toEqual(Object.keys(Prim).sort());
  });

  it("the VJP column says non-differentiable exactly where vjpRules holds null", () => {
    for (const r of rows) {
      const p = Prim[r.member as keyof typeof Prim];
      expect(r.vjp === "non-differentiable", `Prim.${r.member}: ${r.vjp}`).toBe(vjpRules[p] === null);
    }
  });

  it("the native column names a C function of moe-kernels.h exactly where native supports() has a case", () => {
    const cases = nativeCases();
    const header = readFileSync(join(root, "native/include/moe-kernels.h"), "utf8");
    for (const r of rows) {
      expect(r.native !== "—", `Prim.${r.member}: ${r.native}`).toBe(cases.has(r.member));
      for (const [, fn] of r.native.matchAll(/`(moe_\w+)`/g)) expect(header, `${fn} in moe-kernels.h`).toMatch(new RegExp(`\\b${fn}\\(`));
    }
  });

  it("the shape-rule and ref-kernel columns name files that exist", () => {
    for (const r of rows) {
      const rule = firstFile(r.shapeRule);
      expect(rule, `Prim.${r.member} shape rule`).toBeDefined();
      expect(existsSync(join(root, "src/prims", rule!)), `src/prims/${rule}`).toBe(true);
      const kernel = firstFile(r.refKernel);
      if (kernel !== undefined) expect(existsSync(join(root, "src/backends/ref/kernels", kernel)), `ref/kernels/${kernel}`).toBe(true);
    }
  });

  it("relative links and the src/ paths it names exist", () => {
    const links = [...text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => m[1]!).filter((t) => !/^[a-z]+:/.test(t));
    expect(links.filter((t) => !existsSync(join(root, dirname(doc), t)))).toEqual([]);
    const paths = [...text.matchAll(/`((?:src|test|native)\/[\w./-]+\.(?:ts|h|cpp))`/g)].map((m) => m[1]!);
    expect(paths.length).toBeGreaterThan(0);
    expect(paths.filter((p) => !existsSync(join(root, p)))).toEqual([]);
  });
});
