// Typed access to the Node-API addon built from native/ (see native/include/moe-kernels.h for the kernels'
// contracts). Loading never throws: when the addon is missing or fails to load, `binding` is undefined and
// `unavailableReason` says why.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export type NativeIsa = "scalar" | "avx2" | "avx512";

/** The addon's exports. Kernels write into `out` (preallocated, exact length, not overlapping an input). */
export interface NativeBinding {
  readonly version: string;
  /** ISA the kernels use now. */
  isa(): NativeIsa;
  /** Best ISA this CPU supports (the default unless MOEKIT_NATIVE_ISA caps it). */
  bestIsa(): NativeIsa;
  /** Use a lower ISA (tests, benchmarks); throws for one above bestIsa(). */
  setIsa(isa: NativeIsa): void;
  /** Threads the kernels use (the calling thread included). */
  threads(): number;
  defaultThreads(): number;
  /** n >= 1, or 0 for the default (number of CPUs). */
  setThreads(n: number): void;
  /** lhs[m,k], rhs[G,k,n] (or [G,n,k] if transposeRhs), groupSizes[G] -> out[m,n]; rows past sum(groupSizes) 0. */
  gmm(
    lhs: Float32Array,
    rhs: Float32Array,
    groupSizes: Int32Array,
    m: number,
    k: number,
    n: number,
    transposeRhs: boolean,
    out: Float32Array,
  ): void;
  /** gradOut[m,n], rhs as in gmm -> gradLhs[m,k] = gradOut @ rhs[g]^T per group; rows past the sum 0. */
  gmmBwdLhs(
    gradOut: Float32Array,
    rhs: Float32Array,
    groupSizes: Int32Array,
    m: number,
    k: number,
    n: number,
    transposeRhs: boolean,
    gradLhs: Float32Array,
  ): void;
  /** lhs[m,k], rhs[m,n], groupSizes[G] -> out[G,k,n], out[g] = lhs_g^T rhs_g; empty groups 0. */
  tgmm(
    lhs: Float32Array,
    rhs: Float32Array,
    groupSizes: Int32Array,
    m: number,
    k: number,
    n: number,
    out: Float32Array,
  ): void;
  /** a[b,m,k] x b[b,k,n] -> out[b,m,n]. */
  bmm(a: Float32Array, b: Float32Array, batch: number, m: number, k: number, n: number, out: Float32Array): void;
}

const ADDON = join("native", "build", "Release", "moekit_native.node");
const FUNCTIONS = ["isa", "bestIsa", "setIsa", "threads", "defaultThreads", "setThreads", "gmm", "gmmBwdLhs", "tgmm", "bmm"];

/** The addon path: MOEKIT_NATIVE_ADDON, else native/build/Release in the nearest package root above this file. */
function addonPath(): string | undefined {
  const fromEnv = process.env.MOEKIT_NATIVE_ADDON;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return join(dir, ADDON);
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

function load(): { binding?: NativeBinding; reason?: string } {
  const off = process.env.MOEKIT_NATIVE;
  if (off === "0" || off === "off") return { reason: `disabled by MOEKIT_NATIVE=${off}` };
  const path = addonPath();
  if (path === undefined) return { reason: "package root not found" };
  if (!existsSync(path)) return { reason: `${path} not found (build it with \`npm run build:native\`)` };
  try {
    const mod = createRequire(import.meta.url)(path) as Record<string, unknown>;
    const missing = FUNCTIONS.filter((f) => typeof mod[f] !== "function");
    if (missing.length > 0) return { reason: `${path} lacks ${missing.join(", ")} (stale build?)` };
    return { binding: mod as unknown as NativeBinding };
  } catch (e) {
    return { reason: `${path} failed to load: ${e instanceof Error ? e.message : String(e)}` };
  }
}

const loaded = load();

/** The addon, or undefined when it is not available. */
export const binding: NativeBinding | undefined = loaded.binding;
/** Why `binding` is undefined. */
export const unavailableReason: string | undefined = loaded.reason;
