// Runs the CLI in-process with console captured, or as a child process bounded in time.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll } from "vitest";
import { main } from "../../src/cli/main.js";
import { captureConsole } from "../harness/console.js";

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** Captures console output for the tests of the calling file; `cli` runs one command. */
export function useCli(): (...argv: string[]) => Promise<CliResult> {
  const { out, err } = captureConsole();
  return async (...argv) => {
    out.length = 0;
    err.length = 0;
    const code = await main(argv);
    return { code, out: out.join("\n"), err: err.join("\n") };
  };
}

/** A fresh folder per call, all removed after the file's tests. */
export function useScratch(prefix: string): (name: string) => string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `moekit-${prefix}-`));
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
  let n = 0;
  return (name) => path.join(root, `${n++}`, name);
}

const CHILDREN = path.join(import.meta.dirname, "children");

/** Runs test/hostile/children/<script> under tsx, killed after `timeoutMs`. */
export function runChild(
  script: string,
  args: string[],
  timeoutMs = 30_000,
): { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; timedOut: boolean } {
  const r = spawnSync(process.execPath, ["--import", "tsx", path.join(CHILDREN, script), ...args], {
    encoding: "utf8",
    timeout: timeoutMs,
  });
  const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === "ETIMEDOUT";
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, timedOut };
}

/** Names in `dir` that are moekit temporaries. */
export function temporariesIn(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.includes(".moekit-"));
}

/** The bytes of every file under `dir`, by relative path (for "nothing changed" checks). */
export function snapshot(p: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (q: string): void => {
    if (fs.statSync(q).isDirectory()) for (const n of fs.readdirSync(q).sort()) walk(path.join(q, n));
    else out[path.relative(p, q)] = fs.readFileSync(q).toString("base64");
  };
  walk(p);
  return out;
}
