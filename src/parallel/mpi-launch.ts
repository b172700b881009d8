/// <reference types="node" preserve="true" />
// Starting an MPI job from Node: `mpirun` over this machine's cores (oversubscribed when ranks outnumber them).
import { checkOptionKeys } from "../core/suggest.js";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { deserialize, serialize } from "node:v8";
import { MoeError } from "../core/errors.js";
import { decode, encode } from "./wire.js";

/** Why `mpirun` cannot be started here, or undefined when it can. */
export function mpirunMissing(): string | undefined {
  const r = spawnSync("mpirun", ["--version"], { encoding: "utf8" });
  if (r.error !== undefined) return "mpirun not found (install Open MPI: apt-get install openmpi-bin libopenmpi-dev)";
  return r.status === 0 ? undefined : `mpirun --version failed: ${(r.stderr || r.stdout).trim()}`;
}

/** `mpirun`'s arguments for `size` local ranks, up to the command: oversubscribed, unbound, allowed as root. */
export function mpirunArgs(size: number): string[] {
  if (!Number.isInteger(size) || size < 1) throw new MoeError(`[mpi] ranks must be a positive integer, got ${size}`);
  const root = process.getuid?.() === 0 ? ["--allow-run-as-root"] : [];
  return [...root, "--oversubscribe", "--bind-to", "none", "-np", String(size)];
}

/** The lines of a failed job's output that name a rank (moekit's and mpirun's), else its last lines. */
function summary(output: string): string {
  const lines = output.split("\n").map((l) => l.trim());
  const named = lines.filter((l) => /^moekit: MPI rank|noticed that process rank|MPI_ABORT was invoked on rank/.test(l));
  return (named.length > 0 ? named : lines.filter((l) => l !== "" && !l.startsWith("---")).slice(-6)).join(" | ");
}

/** The compiled rank entry: next to this file when built, else the package's dist/. */
function entryPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const p of [join(here, "mpi-entry.js"), join(here, "../../dist/src/parallel/mpi-entry.js")]) if (existsSync(p)) return p;
  throw new MoeError("[mpi] mpi-entry.js not found: build moekit (npm run build) first");
}

/**
 * Run `module`'s default export `(group, args) => result` on `size` MPI ranks (`mpirun`, one process each, joined
 * with joinMpi) and collect the results in rank order. A rank that fails ends the job; the error carries the end of
 * the job's output, which names the rank. `timeoutMs` bounds the whole job (then it is killed).
 */
export async function runMpi<T>(size: number, module: string | URL, args?: unknown, opts: { timeoutMs?: number } = {}): Promise<T[]> {
  checkOptionKeys(opts, ["timeoutMs"], "runMpi");
  const missing = mpirunMissing();
  if (missing !== undefined) throw new MoeError(`[mpi] MPI unavailable: ${missing}`);
  const dir = mkdtempSync(join(tmpdir(), "moekit-mpi-"));
  try {
    writeFileSync(join(dir, "args.bin"), serialize(encode(args)));
    const mod = module instanceof URL ? module.href : module;
    const child = spawn("mpirun", [...mpirunArgs(size), process.execPath, entryPath(), mod, dir], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const keep = (b: Buffer): void => {
      output = (output + b.toString()).slice(-8000);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs);
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    clearTimeout(timer);
    if (code !== 0) {
      const why = code === null ? `killed after ${opts.timeoutMs} ms` : `exit code ${code}`;
      throw new MoeError(`[mpi] mpirun -np ${size} failed (${why}): ${summary(output)}`, { cause: output });
    }
    return Array.from({ length: size }, (_, r) => decode(deserialize(readFileSync(join(dir, `rank-${r}.bin`)))) as T);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
