// moekit's environment flags, all read and validated here (and only when asked, never at import):
//   MOEKIT_BACKEND=auto|native|ref      the backend (auto: native when the addon loads, else ref)
//   MOEKIT_THREADS=n                    native kernel threads, 0 = one per CPU
//   MOEKIT_POOL_MB=n                    budget of the recycled-storage pool and of the addon's free blocks, MiB each (0 disables them)
//   MOEKIT_NATIVE=0|off                 never load the native addon
//   MOEKIT_NATIVE_ADDON=path            load the addon from this path
//   MOEKIT_NATIVE_ISA=scalar|avx2|avx512         cap the instruction set of the native kernels
//   MOEKIT_NATIVE_BF16=widen|dpbf16|amx          how the native kernels multiply bf16 weights
//   MOEKIT_TUNE=path|off               the GEMM blocking file of `moekit tune` (default: the one of this CPU in ~/.cache/moekit/tune)
//   MOEKIT_TRACE=0|1                    time every primitive by backend and print the table at exit
//   MOEKIT_MPI_TIMEOUT=seconds          an MPI collective not complete by then is an error (default 300, 0 = never)
import { MoeError } from "./errors.js";

export const BACKEND_CHOICES = ["auto", "native", "ref"] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];
export type NativeIsa = "scalar" | "avx2" | "avx512";
export type NativeBf16Path = "widen" | "dpbf16" | "amx";

export interface MoekitEnv {
  backend: BackendChoice;
  threads: number | undefined;
  poolMb: number | undefined;
  nativeDisabled: boolean;
  nativeAddon: string | undefined;
  nativeIsa: NativeIsa | undefined;
  nativeBf16: NativeBf16Path | undefined;
  tune: string | undefined;
  trace: boolean;
  mpiTimeoutS: number | undefined;
}

/** The most native threads accepted (a larger count is a typo, not a machine). */
export const MAX_THREADS = 1024;

const list = (xs: readonly string[]): string => `${xs.slice(0, -1).join(", ")} or ${xs[xs.length - 1]}`;

function oneOf<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) throw new MoeError(`[env] ${name}=${v} must be ${list(allowed)}`);
  return v as T;
}

function number(name: string, v: string | undefined, integer: boolean, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = v.trim() === "" ? NaN : Number(v);
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n)) || n > max) {
    throw new MoeError(`[env] ${name}=${v} must be a ${integer ? "non-negative integer" : "non-negative number"} up to ${max}`);
  }
  return n;
}

/** The flags of `env` (default: this process's environment), validated: a bad value throws, naming the variable. */
export function readEnv(env: Readonly<Record<string, string | undefined>> = process.env): MoekitEnv {
  const native = oneOf("MOEKIT_NATIVE", env.MOEKIT_NATIVE, ["0", "off", "1", "on", ""]);
  return {
    backend: oneOf("MOEKIT_BACKEND", env.MOEKIT_BACKEND, BACKEND_CHOICES) ?? "auto",
    threads: number("MOEKIT_THREADS", env.MOEKIT_THREADS, true, MAX_THREADS),
    poolMb: number("MOEKIT_POOL_MB", env.MOEKIT_POOL_MB, false, 2 ** 30),
    nativeDisabled: native === "0" || native === "off",
    nativeAddon: env.MOEKIT_NATIVE_ADDON === "" ? undefined : env.MOEKIT_NATIVE_ADDON,
    nativeIsa: oneOf("MOEKIT_NATIVE_ISA", env.MOEKIT_NATIVE_ISA, ["scalar", "avx2", "avx512"]),
    nativeBf16: oneOf("MOEKIT_NATIVE_BF16", env.MOEKIT_NATIVE_BF16, ["widen", "dpbf16", "amx"]),
    tune: env.MOEKIT_TUNE,
    trace: oneOf("MOEKIT_TRACE", env.MOEKIT_TRACE, ["0", "1", ""]) === "1",
    mpiTimeoutS: number("MOEKIT_MPI_TIMEOUT", env.MOEKIT_MPI_TIMEOUT, false, 1e6),
  };
}
