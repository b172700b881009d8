// Backend selection, the one place that reads moekit's environment flags:
//   MOEKIT_BACKEND=auto|native|ref   (default auto: native when the addon loads, else ref, said once)
//   MOEKIT_THREADS=n                 native thread count (default: number of CPUs)
//   MOEKIT_POOL_MB=n                 budget of the recycled-storage pool (default 2048; 0 disables it)
import { MoeError } from "./core/errors.js";
import { getBackend, registerBackend, setBackend } from "./backends/backend.js";
import { refBackend } from "./backends/ref/index.js";
import { nativeBackend, nativeInfo, nativeMoeFfn, setNativeThreads, type NativeInfo } from "./backends/native/index.js";
import { setFusedMoeFfn } from "./moe/fused-ffn.js";
import { storagePool } from "./core/pool.js";

export type BackendChoice = "auto" | "native" | "ref";

let warned = false;

/** Make `choice` the active backend; "auto" picks native when the addon is available. Returns the name in use. */
export function useBackend(choice: BackendChoice = "auto"): string {
  registerBackend(refBackend);
  setFusedMoeFfn(undefined);
  if (choice === "ref") return setBackend("ref").name;
  if (nativeBackend === undefined) {
    const why = nativeInfo().reason ?? "unknown reason";
    if (choice === "native") throw new MoeError(`[backend] the native backend is unavailable: ${why}`);
    if (!warned) {
      warned = true;
      console.warn(`moekit: native addon unavailable (${why}); using the reference backend (set MOEKIT_BACKEND=ref to silence)`);
    }
    return setBackend("ref").name;
  }
  registerBackend(nativeBackend);
  // the fused gather + GLU + grouped matmuls + combine kernels (forward and backward)
  setFusedMoeFfn(nativeMoeFfn);
  return setBackend("native").name;
}

/** Apply MOEKIT_BACKEND / MOEKIT_THREADS / MOEKIT_POOL_MB from the environment. */
export function initFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const choice = (env.MOEKIT_BACKEND ?? "auto") as BackendChoice;
  if (!["auto", "native", "ref"].includes(choice)) throw new MoeError(`[backend] MOEKIT_BACKEND=${choice} must be auto, native or ref`);
  if (env.MOEKIT_THREADS !== undefined) {
    const n = Number(env.MOEKIT_THREADS);
    if (!Number.isInteger(n) || n < 0) throw new MoeError(`[backend] MOEKIT_THREADS=${env.MOEKIT_THREADS} must be a non-negative integer`);
    setNativeThreads(n);
  }
  if (env.MOEKIT_POOL_MB !== undefined) {
    const mb = Number(env.MOEKIT_POOL_MB);
    if (env.MOEKIT_POOL_MB.trim() === "" || !Number.isFinite(mb) || mb < 0) throw new MoeError(`[backend] MOEKIT_POOL_MB=${env.MOEKIT_POOL_MB} must be a non-negative number of MiB`);
    storagePool.setMaxBytes(mb * 2 ** 20);
  }
  return useBackend(choice);
}

export interface RuntimeInfo {
  backend: string;
  native: NativeInfo;
}

export function runtimeInfo(): RuntimeInfo {
  return { backend: getBackend().name, native: nativeInfo() };
}

export { setNativeThreads };
