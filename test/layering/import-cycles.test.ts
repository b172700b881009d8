// No runtime import cycles anywhere in src/ (type-only imports aside): eslint.config.js keeps the layers in order,
// this keeps the files inside a layer in order too.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "../..");

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** The relative runtime imports (and re-exports) of a file, as paths from the repository root. */
function runtimeImports(file: string, text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\s+(type\s+)?[^;]*?\sfrom\s+"(\.[^"]+)"/gms)) {
    if (m[1] === undefined) out.push(normalize(join(dirname(file), m[2]!.replace(/\.js$/, ".ts"))));
  }
  return out;
}

/** Every cycle found by a depth-first walk, as "a -> b -> a". */
function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const cycles: string[] = [];
  const visit = (v: string): void => {
    state.set(v, 1);
    stack.push(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (state.get(w) === 1) cycles.push([...stack.slice(stack.indexOf(w)), w].join(" -> "));
      else if (state.get(w) === undefined) visit(w);
    }
    stack.pop();
    state.set(v, 2);
  };
  for (const v of graph.keys()) if (state.get(v) === undefined) visit(v);
  return cycles;
}

describe("src/ import graph", () => {
  it("the cycle finder finds a planted cycle", () => {
    const g = new Map([
      ["a.ts", ["b.ts"]],
      ["b.ts", ["c.ts"]],
      ["c.ts", ["a.ts"]],
    ]);
    expect(findCycles(g)).toEqual(["a.ts -> b.ts -> c.ts -> a.ts"]);
    expect(runtimeImports("src/x/y.ts", 'import { a } from "../z/w.js";\nimport type { T } from "./t.js";')).toEqual(["src/z/w.ts"]);
  });

  it("has no runtime import cycles", () => {
    const graph = new Map(sources("src").map((f) => [f, runtimeImports(f, readFileSync(join(root, f), "utf8"))]));
    expect(graph.size).toBeGreaterThan(50);
    expect(findCycles(graph)).toEqual([]);
  });
});
