// The native CPU backend: the Node-API addon built from native/ (grouped and batched matmuls, the fused expert FFN,
// top-k, argsort, elementwise ops, reductions, movement and indexing, optimizer steps). Nothing is loaded until first
// asked for.
import { MAX_THREADS, readEnv, type MoekitEnv } from "../../core/env.js";
import { MoeError } from "../../core/errors.js";
import { useLargeBuffers } from "../../core/dtype.js";
import { storagePool } from "../../core/pool.js";
import { Prim } from "../../prims/prims.js";
import type { Backend } from "../backend.js";
import { nativeBinding, nativeUnavailableReason, type NativeBf16Path, type NativeIsa } from "./binding.js";
import { run, supports } from "./kernels.js";
import { applyTuneFile, tuneState } from "./tune-file.js";

export type { NativeBf16Path, NativeIsa };

let backend: Backend | undefined;
const mapped = (bytes: number): ArrayBuffer => nativeBinding()!.mappedBuffer(bytes);

/** The native backend, or undefined when the addon is unavailable (see nativeInfo().reason). */
export function nativeBackend(): Backend | undefined {
  const b = nativeBinding();
  if (b === undefined) return undefined;
  useLargeBuffers(mapped); // every call: select.ts's first-buffer hook may have run in between
  if (backend === undefined) {
    backend = {
      name: "native",
      supports: (prim, ins, params) => supports(b, prim, ins, params),
      run: (prim, ins, params, outs) => run(b, prim, ins, params, outs),
      roundsBf16: (prim) => prim === Prim.Cast,
    };
    storagePool.useFreshStorage({ take: (n) => b.pooledF32(n), setMaxBytes: (bytes) => b.setPooledMaxBytes(bytes), trim: () => b.trimPooled() });
  }
  return backend;
}

export interface NativeInfo {
  available: boolean;
  /** Why the addon is unavailable. */
  reason?: string;
  /** ISA the kernels use, and the best this CPU supports. */
  isa?: NativeIsa;
  bestIsa?: NativeIsa;
  /** Threads the kernels use (0 when unavailable). */
  threads: number;
  /** How bf16 weights are multiplied. */
  bf16Path?: NativeBf16Path;
  /** The GEMM engine's blocking: derived from the caches and the ISA, or set by a tune file. */
  blocking?: string;
  /** Where the blocking came from: "model", or the tune file applied (and why one was not). */
  tuning?: string;
}

export function nativeInfo(): NativeInfo {
  const b = nativeBinding();
  if (b === undefined) return { available: false, reason: nativeUnavailableReason(), threads: 0 };
  const t = tuneState();
  const tuning = t.source === "file" ? `file ${t.path ?? "?"}` : `model${t.note !== undefined ? ` (${t.note})` : ""}`;
  return { available: true, isa: b.isa(), bestIsa: b.bestIsa(), threads: b.threads(), bf16Path: b.bf16Path(), blocking: b.blockingInfo(), tuning };
}

// what a caller set through the API, which the environment's flags, applied when native is chosen, leave as set
const explicit = new Set<"threads" | "bf16">();

/** Threads for the native kernels: n >= 1, or 0 for the number of CPUs. Returns false (and does nothing) when the addon is unavailable. */
export function setNativeThreads(n: number): boolean {
  const b = nativeBinding();
  if (b === undefined) return false;
  if (!Number.isInteger(n) || n < 0 || n > MAX_THREADS)
    throw new MoeError(`[native] thread count ${n} must be an integer from 0 (the number of CPUs) to ${MAX_THREADS}`);
  b.setThreads(n);
  explicit.add("threads");
  return true;
}


/** Choose the bf16 path (tests, benchmarks); throws for one the CPU lacks. Returns false without the addon. */
export function setNativeBf16Path(path: NativeBf16Path): boolean {
  const b = nativeBinding();
  if (b === undefined) return false;
  b.setBf16Path(path);
  explicit.add("bf16");
  return true;
}

/**
 * A rank's default thread count where `ranksHere` ranks share this machine's CPUs (worker-thread ranks; MPI ranks on
 * one node): each gets an equal share, at least one, unless MOEKIT_THREADS names a count. A no-op without the addon.
 */
export function shareCores(ranksHere: number, env: MoekitEnv = readEnv()): void {
  const b = nativeBinding();
  if (b === undefined || env.threads !== undefined || !(ranksHere > 1)) return;
  b.setThreads(Math.max(1, Math.floor(b.defaultThreads() / ranksHere)));
}

/** Apply the environment's native flags (threads, ISA cap, bf16 path, tune file); a no-op without the addon. */
export function configureNative(env: MoekitEnv): void {
  const b = nativeBinding();
  if (b === undefined) return;
  if (env.threads !== undefined && !explicit.has("threads")) b.setThreads(env.threads);
  if (env.nativeIsa !== undefined) {
    const order: NativeIsa[] = ["scalar", "avx2", "avx512"];
    const best = b.bestIsa();
    // a cap above what the CPU runs leaves the best ISA
    b.setIsa(order.indexOf(env.nativeIsa) < order.indexOf(best) ? env.nativeIsa : best);
  }
  if (env.nativeBf16 !== undefined && !explicit.has("bf16")) {
    try {
      b.setBf16Path(env.nativeBf16);
    } catch (e) {
      throw new MoeError(`[env] MOEKIT_NATIVE_BF16=${env.nativeBf16}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  applyTuneFile(b, env.tune);
}

/** Bytes the native one-shot workspace holds (0 without the addon). */
export function nativeWorkspaceBytes(): number {
  return nativeBinding()?.workspaceBytes() ?? 0;
}

