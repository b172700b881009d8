// The blocking that `moekit tune` measured on one CPU model, kept as JSON in the user's cache directory and applied to
// the native GEMM engine at start-up (block sizes change speed only, never results).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { MoeError } from "../../core/errors.js";
import type { NativeBinding } from "./binding.js";

/** The block sizes of one multiply kind. */
export interface KindBlocking {
  kc: number;
  mc: number;
  nc: number;
}

export interface TuneFile {
  moekitTune: 1;
  /** cpuid brand string and ISA the blocking was measured with: it applies only to the same. */
  cpu: string;
  isa: string;
  /** f32, dpbf16, amx: the kinds measured. */
  blocking: Record<string, KindBlocking>;
  /** What was measured, for the record (moekit tune --json prints the same). */
  [extra: string]: unknown;
}

export const TUNE_KINDS = ["f32", "dpbf16", "amx"] as const;

/** The multiply kinds the active ISA has (the bf16-pair kinds need avx512). */
const kindsOf = (b: NativeBinding): readonly string[] => (b.isa() === "avx512" ? TUNE_KINDS : ["f32"]);

/** The default tune file of this CPU and ISA: $XDG_CACHE_HOME (else ~/.cache)/moekit/tune/<cpu>-<isa>.json. */
export function defaultTunePath(cpu: string, isa: string, env: Readonly<Record<string, string | undefined>> = process.env): string {
  const base = env.XDG_CACHE_HOME !== undefined && env.XDG_CACHE_HOME !== "" ? env.XDG_CACHE_HOME : join(homedir(), ".cache");
  const slug = (cpu === "" ? "unknown-cpu" : cpu).replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "").toLowerCase();
  return join(base, "moekit", "tune", `${slug}-${isa}.json`);
}

/** Parses and checks a tune file's text; errors name the file and the key. */
export function parseTuneFile(text: string, path: string): TuneFile {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new MoeError(`[tune] ${path}: not JSON (${e instanceof Error ? e.message : String(e)}); run \`moekit tune\` again or set MOEKIT_TUNE=off`);
  }
  const bad = (what: string): never => {
    throw new MoeError(`[tune] ${path}: ${what}; run \`moekit tune\` again or set MOEKIT_TUNE=off`);
  };
  if (typeof v !== "object" || v === null || Array.isArray(v)) return bad("not a JSON object");
  const o = v as Record<string, unknown>;
  if (o.moekitTune !== 1) bad(`key "moekitTune" must be 1, got ${JSON.stringify(o.moekitTune)}`);
  if (typeof o.cpu !== "string") bad(`key "cpu" must be a string`);
  if (typeof o.isa !== "string") bad(`key "isa" must be a string`);
  const blocking = o.blocking;
  if (typeof blocking !== "object" || blocking === null || Array.isArray(blocking)) return bad(`key "blocking" must be an object`);
  for (const [kind, b] of Object.entries(blocking as Record<string, unknown>)) {
    if (!(TUNE_KINDS as readonly string[]).includes(kind)) bad(`key "blocking.${kind}" is not a multiply kind (${TUNE_KINDS.join(", ")})`);
    for (const f of ["kc", "mc", "nc"] as const) {
      const x = (b as Record<string, unknown> | null)?.[f];
      if (typeof x !== "number" || !Number.isInteger(x) || x <= 0) bad(`key "blocking.${kind}.${f}" must be a positive integer, got ${JSON.stringify(x)}`);
    }
  }
  return o as TuneFile;
}

export function writeTuneFile(path: string, file: TuneFile): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(file, null, 2)}\n`);
}

/** Where the blocking in use came from: the cache model, or a tune file (and why a file was not applied). */
export interface TuneState {
  source: "model" | "file";
  path?: string;
  note?: string;
}

let state: TuneState = { source: "model" };

export function tuneState(): TuneState {
  return state;
}

/**
 * Applies the tune file named by MOEKIT_TUNE (a path; off or 0: none), else the default one of this CPU and ISA where it
 * exists. A file measured on another CPU or ISA is left alone (tuneState says why); a malformed one, or blocks the
 * engine refuses, throw naming the file.
 */
export function applyTuneFile(b: NativeBinding, setting: string | undefined, env: Readonly<Record<string, string | undefined>> = process.env): TuneState {
  for (const kind of kindsOf(b)) b.setBlocking(kind, 0, 0, 0);
  state = { source: "model" };
  if (setting === "off" || setting === "0") return state;
  const cpu = b.cpuBrand();
  const path = setting !== undefined && setting !== "" ? setting : defaultTunePath(cpu, b.isa(), env);
  if (!existsSync(path)) {
    if (setting !== undefined && setting !== "") throw new MoeError(`[env] MOEKIT_TUNE=${setting}: no such file (write one with \`moekit tune --out ${setting}\`)`);
    return state;
  }
  const file = parseTuneFile(readFileSync(path, "utf8"), path);
  if (file.cpu !== cpu || file.isa !== b.isa()) {
    state = { source: "model", path, note: `${path} was measured on ${file.cpu} (${file.isa}), not this ${cpu} (${b.isa()})` };
    return state;
  }
  for (const [kind, k] of Object.entries(file.blocking)) {
    if (!kindsOf(b).includes(kind)) continue;
    try {
      b.setBlocking(kind, k.kc, k.mc, k.nc);
    } catch (e) {
      throw new MoeError(`[tune] ${path}: blocking.${kind}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  state = { source: "file", path };
  return state;
}
