import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");
const built = existsSync(join(root, "dist/src/index.js"));
const docs = ["README.md", "bench/README.md", "bench/RESULTS.md"];

describe("README", () => {
  it.each(docs)("%s: relative links name files that exist", (doc) => {
    const text = readFileSync(join(root, doc), "utf8");
    const targets = [...text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => m[1]!).filter((t) => !/^[a-z]+:/.test(t));
    const missing = targets.filter((t) => !existsSync(join(root, dirname(doc), t)));
    expect(missing).toEqual([]);
  });

  it("stays a user's page of at most about 150 lines", () => {
    expect(readFileSync(join(root, "README.md"), "utf8").split("\n").length).toBeLessThanOrEqual(160);
  });

  it.skipIf(!built)("the TypeScript quickstart runs as written (against the built package)", () => {
    const block = /```ts\n([\s\S]*?)```/.exec(readFileSync(join(root, "README.md"), "utf8"));
    expect(block).not.toBeNull();
    // inside the package root, so that `import ... from "moekit"` resolves to this package
    const file = join(root, "build", "readme-quickstart.ts");
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, block![1]!);
    const out = execFileSync(process.execPath, ["--import", "tsx", file], { cwd: root, encoding: "utf8" });
    expect(out).toMatch(/^output \[ 2, 4, 16 \] lb_loss \d\.\d{5}$/m);
    expect(out).toMatch(/^loss \d+\.\d{5} grad wo \[ 8, 32, 16 \]$/m);
  });
});
