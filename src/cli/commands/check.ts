import { readdirSync, statSync } from "node:fs";
import { parseCommandArgs } from "../flags.js";
import { join } from "node:path";
import { MoeError } from "../../core/errors.js";
import { loadCase } from "../golden/case.js";
import { runCase, type CaseResult } from "../golden/run.js";

const HELP = `Usage: moekit check <file-or-dir>... [--json]

Runs golden cases (the JSON format of fixtures/golden, expert-parallel cases included): forward, every
gradient and side output, each judged by max|got-expected| <= 1e-4*max(1, max|expected|) (integers
exactly). Prints one line per case with the worst tensor's scaled error; exits 1 if any case fails.

Options:
  --json      one JSON document with every tensor's result
  --verbose   list every tensor of every case`;

function collect(paths: string[]): string[] {
  const files: string[] = [];
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch {
      throw new MoeError(`no such file or directory: ${p}`);
    }
    if (st.isDirectory()) {
      files.push(
        ...readdirSync(p)
          .filter((f) => f.endsWith(".json"))
          .sort()
          .map((f) => join(p, f)),
      );
    } else files.push(p);
  }
  if (files.length === 0) throw new MoeError(`no .json cases found in ${paths.join(", ")}`);
  return files;
}

function line(r: CaseResult): string {
  if (r.error !== undefined) return `FAIL  ${r.name}  error: ${r.error}`;
  const w = r.worst;
  const worst =
    w === undefined ? "" : `worst ${w.name} ${Number.isFinite(w.error) ? w.error.toExponential(2) : "inf"}${w.note ? ` (${w.note})` : ""}`;
  const bad = r.checks.filter((c) => !c.ok).map((c) => c.name);
  return `${r.ok ? "PASS" : "FAIL"}  ${r.name}  ${worst}${bad.length > 0 ? `  failing: ${bad.join(", ")}` : ""}`;
}

export async function checkCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args: argv,
    allowPositionals: true,
    options: { json: { type: "boolean" }, verbose: { type: "boolean" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help === true) {
    console.log(HELP);
    return 0;
  }
  if (positionals.length === 0) throw new MoeError("give at least one case file or directory (see --help)");
  const results: CaseResult[] = [];
  for (const f of collect(positionals)) {
    let r: CaseResult;
    try {
      r = await runCase(loadCase(f));
    } catch (e) {
      r = { name: f, ok: false, checks: [], worst: undefined, error: (e as Error).message };
    }
    results.push(r);
    if (values.json !== true) {
      console.log(line(r));
      if (values.verbose === true)
        for (const c of r.checks)
          console.log(`        ${c.ok ? "ok  " : "FAIL"} ${c.name} ${c.error.toExponential(2)}${c.note ? ` ${c.note}` : ""}`);
    }
  }
  const passed = results.filter((r) => r.ok).length;
  if (values.json === true) {
    console.log(
      JSON.stringify(
        { passed, failed: results.length - passed, cases: results },
        (_k, v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v),
        2,
      ),
    );
  } else {
    console.log(`${passed} passed, ${results.length - passed} failed`);
  }
  return passed === results.length ? 0 : 1;
}
