// Which backend runs primitives. Nothing is chosen at import: the first primitive or large buffer (or useBackend, or
// configureFromEnv) chooses, from MOEKIT_BACKEND and the other flags of core/env.ts.
import { useLargeBuffers, zeroed } from "../core/dtype.js";
import { BACKEND_CHOICES, readEnv, type BackendChoice, type MoekitEnv } from "../core/env.js";
import { MoeError } from "../core/errors.js";
import { storagePool } from "../core/pool.js";
import type { Backend } from "./backend.js";
import { nativeBackend, nativeInfo, configureNative } from "./native/index.js";
import { refBackend } from "./ref/index.js";
import { formatTrace, startTrace, stopTrace, tracing } from "./trace.js";

export type { BackendChoice };

let active: Backend | undefined;
let warned = false;
// the environment last read (configureFromEnv), and whether its native flags went to the addon: only when native is
// chosen, so that a flag the reference backend does not read (MOEKIT_NATIVE_BF16=amx without AMX) cannot stop it
let env: MoekitEnv | undefined;
let nativeConfigured = false;

// Weights made before the first primitive (a checkpoint loaded, a layer initialised) are the buffers decode streams:
// choose the backend at the first large one, so that they land in the native backend's huge pages. A failed choice
// (MOEKIT_BACKEND=native without the addon) throws at the first primitive instead, where it always did.
useLargeBuffers((bytes) => {
  useLargeBuffers(undefined); // once: the backend chosen now sets its own source, if it has one
  try {
    if (activeBackend().name === "native") nativeBackend(); // sets it again, had it been chosen before this ran
  } catch {
    // activeBackend() throws the same error again at the first primitive
  }
  return zeroed(Uint8Array, bytes).buffer as ArrayBuffer;
});

/** The backend primitives run on now (chosen from the environment on first use). */
export function activeBackend(): Backend {
  return active ?? selectBackend(configureFromEnv());
}

function selectBackend(choice: BackendChoice | Backend): Backend {
  // a backend object, or one of the names (a JavaScript caller's "Ref" or "cuda" was taken as auto)
  if (typeof choice === "object" && choice !== null && typeof choice.run === "function") return (active = choice);
  if (!(BACKEND_CHOICES as readonly unknown[]).includes(choice))
    throw new MoeError(
      `[backend] ${JSON.stringify(choice)} is not a backend: give ${BACKEND_CHOICES.map((c) => `"${c}"`).join(", ")} or a Backend object`,
    );
  if (choice === "ref") return (active = refBackend);
  const native = nativeBackend();
  if (native !== undefined && !nativeConfigured) {
    configureNative(env ?? readEnv());
    nativeConfigured = true;
  }
  if (native === undefined) {
    const why = nativeInfo().reason ?? "unknown reason";
    if (choice === "native") throw new MoeError(`[backend] the native backend is unavailable: ${why}`);
    if (!warned) {
      warned = true;
      console.warn(`moekit: native addon unavailable (${why}); using the reference backend (set MOEKIT_BACKEND=ref to silence)`);
    }
    return (active = refBackend);
  }
  return (active = native);
}

/**
 * Make `choice` the active backend ("auto": native when the addon loads, else ref; without one, MOEKIT_BACKEND's).
 * Returns its name. The environment's other flags (pool, trace; threads, ISA, bf16 path, tuning where native is
 * chosen) apply whichever call chooses first.
 */
export function useBackend(choice?: BackendChoice | Backend): string {
  const fromEnv = env?.backend ?? configureFromEnv();
  return selectBackend(choice ?? fromEnv).name;
}

/** Apply the environment's flags (pool budget, native threads / ISA / bf16 path) and return its backend choice. */
export function configureFromEnv(given: Readonly<Record<string, string | undefined>> = process.env): BackendChoice {
  const e: MoekitEnv = readEnv(given);
  env = e;
  nativeConfigured = false;
  if (e.poolMb !== undefined) storagePool.setMaxBytes(e.poolMb * 2 ** 20);
  if (e.trace && !tracing()) {
    startTrace();
    process.once("exit", () => console.error(formatTrace(stopTrace())));
  }
  return e.backend;
}

/** Choose the backend from the environment now (what the CLI does at start-up). Returns its name. */
export function initFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return selectBackend(configureFromEnv(env)).name;
}

export interface RuntimeInfo {
  backend: string;
  native: ReturnType<typeof nativeInfo>;
}

export function runtimeInfo(): RuntimeInfo {
  return { backend: activeBackend().name, native: nativeInfo() };
}
