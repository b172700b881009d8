// Line budget of the engine's core (tinygrad sz.py): src/core + src/prims + src/autodiff, and the primitive count.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { Prim } from "../src/prims/prims.js";

export const BUDGET = 1700;
const ROOTS = ["src/core", "src/prims", "src/autodiff"];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** Non-blank, non-comment lines per file under the core roots. */
export function countLines(root = "."): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of ROOTS) {
    for (const f of files(join(root, r))) {
      out[f] = readFileSync(f, "utf8")
        .split("\n")
        .filter((l) => l.trim() !== "" && !l.trim().startsWith("//") && !l.trim().startsWith("*") && !l.trim().startsWith("/*")).length;
    }
  }
  return out;
}

if (process.argv[1]?.endsWith("sz.ts")) {
  const c = countLines();
  for (const [f, n] of Object.entries(c).sort((a, b) => b[1] - a[1])) console.log(`${String(n).padStart(5)}  ${f}`);
  const total = Object.values(c).reduce((a, b) => a + b, 0);
  console.log(`total ${total} / budget ${BUDGET}; primitives: ${Object.keys(Prim).length}`);
  process.exitCode = total > BUDGET ? 1 : 0;
}
