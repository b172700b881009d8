// Typed access to the Node-API addon built from native/ (see native/include/moe-kernels.h for the kernels'
// contracts). The addon is loaded on first use. A missing or broken addon is not an error: nativeBinding() is
// undefined and nativeUnavailableReason() says why (an invalid MOEKIT_* variable does throw, from core/env.ts).
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { packageRoot } from "../../core/package-root.js";
import { readEnv, type MoekitEnv, type NativeBf16Path, type NativeIsa } from "../../core/env.js";

export type { NativeIsa, NativeBf16Path };

/** Weights of the fused FFN: fp32, or bf16 bit patterns (all three of one kind). */
export type NativeWeights = Float32Array | Uint16Array;

/**
 * What moe_ffn_fwd_* and moe_ffn_bwd_* share: the routed experts' FFN plus the weighted combine, from the sort
 * order (R = T*K rows, order[r] = t*K + k); w null: combine weights of 1.
 * activation: 0 linear, 1 silu, 2 gelu (tanh), 3 sigmoid, 4 relu; clampLimit > 0 selects the GPT-OSS GLU.
 */
export interface NativeFfnProblem {
  x: Float32Array;
  T: number;
  D: number;
  order: Int32Array;
  K: number;
  w: Float32Array | null;
  wi0: NativeWeights;
  wi1: NativeWeights;
  wo: NativeWeights;
  groupSizes: Int32Array;
  E: number;
  H: number;
  activation: number;
  clampLimit: number;
}

/** moe_ffn_fwd_*: optional (null) biases, and the residuals a training forward keeps. */
export interface NativeFfnFwdArgs extends NativeFfnProblem {
  b0: Float32Array | null;
  b1: Float32Array | null;
  bo: Float32Array | null;
  /** [T, D] output */
  y: Float32Array;
  /** [R, H] act, h0, h1 and [R, D] expert outputs, written when given */
  resAct: Float32Array | null;
  resH0: Float32Array | null;
  resH1: Float32Array | null;
  resO: Float32Array | null;
  /** a bfloat16 layer (moe_ffn_fwd_bf16, or _bf16_f32w for float32 weights): every intermediate rounded to bf16 */
  bf16Layer?: boolean;
}

/**
 * moe_ffn_fwd_quantized: the forward with the expert weights held quantized (format as quantizedGmm's: 0 int8, 1 int4,
 * 2 fp8_e4m3, 3 mxfp4), each weight's codes and scales in their storage; lhsBits 0 (float rows) or 2..8 (rows
 * quantized per row before each GMM). Every routed row in a group.
 */
export interface NativeFfnFwdQuantizedArgs extends Omit<NativeFfnProblem, "wi0" | "wi1" | "wo"> {
  format: number;
  lhsBits: number;
  wi0Codes: Int8Array | Uint8Array;
  wi0Scales: Float32Array | Uint8Array;
  wi1Codes: Int8Array | Uint8Array;
  wi1Scales: Float32Array | Uint8Array;
  woCodes: Int8Array | Uint8Array;
  woScales: Float32Array | Uint8Array;
  b0: Float32Array | null;
  b1: Float32Array | null;
  bo: Float32Array | null;
  /** [T, D] output */
  y: Float32Array;
  /** a bfloat16 layer: rounded where moe_ffn_fwd_bf16 rounds */
  bf16Layer?: boolean;
}

/** moe_ffn_bwd_*: gradients from dy [T, D] and the forward's residuals; all but dx optional (null skips the work). */
export interface NativeFfnBwdArgs extends NativeFfnProblem {
  dy: Float32Array;
  resAct: Float32Array;
  resH0: Float32Array;
  resH1: Float32Array;
  resO: Float32Array;
  dx: Float32Array;
  dw: Float32Array | null;
  dwi0: Float32Array | null;
  dwi1: Float32Array | null;
  dwo: Float32Array | null;
  db0: Float32Array | null;
  db1: Float32Array | null;
  dbo: Float32Array | null;
}

/** The addon's exports. Kernels write into `out` (preallocated, exact length, not overlapping an input). */
/** One multiply kind's GEMM blocking: register tile mr x nr, contraction block kc, item mc x nc. */
export interface NativeBlocking {
  mr: number;
  nr: number;
  kc: number;
  mc: number;
  nc: number;
  /** Set by setBlocking (a tune file), rather than the cache model's. */
  set: boolean;
}

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
  /** gmm on int32 operands whose values fit in int8 (check with i32FitsI8), accumulated exactly in int32. */
  gmmI8(
    lhs: Int32Array,
    rhs: Int32Array,
    groupSizes: Int32Array,
    m: number,
    k: number,
    n: number,
    transposeRhs: boolean,
    out: Int32Array,
  ): void;
  /** Whether every element is in [-128, 127]. */
  i32FitsI8(x: Int32Array): boolean;
  /**
   * prims/quantize.ts's abs-max quantization of x [P,C,Q] over C into q [P,C,Q] and scales [P,Q] (noise: stochastic
   * rounding); returns the flat index of the first non-finite x (the outputs are then incomplete), or -1.
   */
  quantizeF32(
    x: Float32Array,
    noise: Float32Array | null,
    P: number,
    C: number,
    Q: number,
    bits: number,
    qwix: boolean,
    q: Int32Array,
    scales: Float32Array,
  ): number;
  /**
   * moe_quantized_gmm (prims/quantized-gmm.ts's contract): format 0 int8, 1 int4, 2 fp8_e4m3, 3 mxfp4; lhs [m,k] float32
   * (lhsScales null) or int32 in int8 range with lhsScales [m]; codes and scales as the format stores them -> out [m,n].
   */
  quantizedGmm(
    format: number,
    lhs: Float32Array | Int32Array,
    lhsScales: Float32Array | null,
    codes: Int8Array | Uint8Array,
    scales: Float32Array | Uint8Array,
    groupSizes: Int32Array,
    m: number,
    k: number,
    n: number,
    out: Float32Array,
  ): void;
  /** a[b,m,k] x b[b,k,n] -> out[b,m,n]. */
  bmm(a: Float32Array, b: Float32Array, batch: number, m: number, k: number, n: number, out: Float32Array): void;
  /** x[rows,n] -> values[rows,k], indices[rows,k]: larger first, NaN first, ties to the lower index. */
  topk(x: Float32Array, rows: number, n: number, k: number, values: Float32Array, indices: Int32Array): void;
  /** Stable ascending argsort of int32 keys. */
  argsortI32(keys: Int32Array, out: Int32Array): void;
  /** bf16 bit patterns of src (round to nearest even; NaN made quiet, sign and top payload kept) into dst. */
  f32ToBf16Bits(src: Float32Array, dst: Uint16Array): void;
  /** src rounded to bf16 values into dst (may be src): nearest even, NaN left as it is (as roundBf16InPlace). */
  roundBf16F32(src: Float32Array, dst: Float32Array): void;
  /** out = a op b elementwise (op 0 add, 1 sub, 2 mul, 3 div; int32: not div, as JavaScript forms it), same lengths and type. */
  binary<A extends Float32Array | Int32Array>(op: number, a: A, b: A, out: A): void;
  /** out = op(x) elementwise (op 0 neg, 1 exp, 2 sigmoid), same lengths. */
  unaryF32(op: number, x: Float32Array, out: Float32Array): void;
  /** x [P,R,Q] reduced over R (op 0 sum, 1 max) in float64 chains into out [P,Q]. */
  reduceF32(op: number, x: Float32Array, P: number, R: number, Q: number, out: Float32Array): void;
  /** out [rows,n] = softmax of each row of x [rows,n] (max and float64 sum chains as reduceF32, exp as unaryF32). */
  softmaxF32(x: Float32Array, rows: number, n: number, out: Float32Array): void;
  /** dst (row-major over shape) = src[offset + sum idx·strides], 4-byte elements. */
  copyStrided(src: Float32Array | Int32Array, dst: Float32Array | Int32Array, shape: readonly number[], strides: readonly number[], offset: number): void;
  /** out [n,inner] = x [rows,inner] at rows idx; returns the first out-of-range position, or -1. */
  gather(x: Float32Array | Int32Array, rows: number, inner: number, idx: Int32Array, out: Float32Array | Int32Array): number;
  /** out [numRows,inner] = zeros + u [n,inner] at rows idx (float64 chains); the first out-of-range position, or -1. */
  scatterAddF32(u: Float32Array, idx: Int32Array, inner: number, numRows: number, out: Float32Array): number;
  /** out [outer,n,inner] = the index along n. */
  iotaI32(outer: number, n: number, inner: number, out: Int32Array): void;
  /** out[v] = occurrences of v in x, for v < out.length. */
  bincountI32(x: Int32Array, out: Int32Array): void;
  /** AdamW in place (moe_adamw_f32): the per-step scalars as float32 values. */
  adamwF32(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, lr: number, b1: number, oneMinusB1: number, b2: number, oneMinusB2: number, bc1: number, bc2: number, eps: number, wd: number): void;
  /** SGD in place (moe_sgd_f32); trace null: no momentum. */
  sgdF32(p: Float32Array, g: Float32Array, trace: Float32Array | null, lr: number, momentum: number): void;
  /** The fused MoE FFN forward (one shot; intermediates in the library's workspace unless residuals are asked for). */
  ffnFwd(args: NativeFfnFwdArgs): void;
  /** The forward over quantized expert weights (serve mode). */
  ffnFwdQuantized(args: NativeFfnFwdQuantizedArgs): void;
  /** Its backward. */
  ffnBwd(args: NativeFfnBwdArgs): void;
  /** fp32 fma GFLOP/s of the active ISA on the current threads, measured for `seconds`. */
  probeFmaPeak(seconds: number): number;
  /** vdpbf16ps GFLOP/s (0 without AVX512_BF16). */
  probeBf16Peak(seconds: number): number;
  /** vpdpbusd GOP/s (0 where the int8 products run on plain loops). */
  probeInt8Peak(seconds: number): number;
  /** AMX tdpbf16ps GFLOP/s (0 without AMX-BF16). */
  probeAmxPeak(seconds: number): number;
  /** GB/s reading a buffer of `bytes`. */
  probeReadBandwidth(bytes: number): number;
  probeReadBandwidthOf(buffer: Float32Array): number;
  cpuHasAvx512Bf16(): boolean;
  cpuHasAmxBf16(): boolean;
  /** bf16-weight path in use (widen when the active ISA is below avx512). */
  bf16Path(): NativeBf16Path;
  /** Throws for a path this CPU / ISA lacks. */
  setBf16Path(path: NativeBf16Path): void;
  /** The GEMM engine's blocking with the active ISA (moe_blocking_info). */
  blockingInfo(): string;
  /** Block sizes of one multiply kind of the active ISA ("f32", "dpbf16", "amx"); 0: the model's (moe_set_blocking). */
  setBlocking(kind: string, kc: number, mc: number, nc: number): void;
  /** The blocking of one multiply kind of the active ISA, and whether setBlocking set it (moe_get_blocking). */
  getBlocking(kind: string): NativeBlocking;
  /** The processor's brand string, "" where unknown. */
  cpuBrand(): string;
  /** Bytes held by the one-shot workspace; releaseWorkspace() frees it. */
  workspaceBytes(): number;
  releaseWorkspace(): void;
  /** A zeroed ArrayBuffer on a mapped block in huge pages (a free one cleared, else a fresh mapping), back to the free list when V8 frees it. */
  mappedBuffer(bytes: number): ArrayBuffer;
  /** A Float32Array on a pooled mapped block (arbitrary contents), returned to the addon's free list when V8 frees it. */
  pooledF32(n: number): Float32Array;
  /** Budget of the free list (bytes); blocks freed beyond it are unmapped. */
  setPooledMaxBytes(bytes: number): void;
  /** Unmaps the free blocks. */
  trimPooled(): void;
  /** Mapped bytes on the free list, and held by JavaScript. */
  pooledStats(): { freeBytes: number; liveBytes: number };
}

const ADDON = join("native", "build", "Release", "moekit_native.node");
const FUNCTIONS = [
  "isa",
  "bestIsa",
  "setIsa",
  "threads",
  "defaultThreads",
  "setThreads",
  "gmm",
  "gmmI8",
  "i32FitsI8",
  "quantizeF32",
  "quantizedGmm",
  "ffnFwdQuantized",
  "tgmm",
  "bmm",
  "topk",
  "argsortI32",
  "f32ToBf16Bits",
  "roundBf16F32",
  "binary",
  "unaryF32",
  "reduceF32",
  "softmaxF32",
  "copyStrided",
  "gather",
  "scatterAddF32",
  "iotaI32",
  "bincountI32",
  "adamwF32",
  "sgdF32",
  "ffnFwd",
  "ffnBwd",
  "probeFmaPeak",
  "probeBf16Peak",
  "probeInt8Peak",
  "probeAmxPeak",
  "probeReadBandwidth",
  "probeReadBandwidthOf",
  "cpuHasAvx512Bf16",
  "cpuHasAmxBf16",
  "bf16Path",
  "setBf16Path",
  "blockingInfo",
  "setBlocking",
  "getBlocking",
  "cpuBrand",
  "workspaceBytes",
  "releaseWorkspace",
  "pooledF32",
  "mappedBuffer",
  "setPooledMaxBytes",
  "trimPooled",
  "pooledStats",
];

/** The addon path: MOEKIT_NATIVE_ADDON, else native/build/Release in the nearest package root above this file. */
function addonPath(env: MoekitEnv): string | undefined {
  if (env.nativeAddon !== undefined) return env.nativeAddon;
  const root = packageRoot();
  return root === undefined ? undefined : join(root, ADDON);
}

function load(env: MoekitEnv): { binding?: NativeBinding; reason?: string } {
  if (env.nativeDisabled) return { reason: "disabled by MOEKIT_NATIVE" };
  const path = addonPath(env);
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

let loaded: { binding?: NativeBinding; reason?: string } | undefined;

/** The addon, loaded on the first call (undefined when it is not available: see nativeUnavailableReason). */
export function nativeBinding(): NativeBinding | undefined {
  loaded ??= load(readEnv());
  return loaded.binding;
}

/** Why nativeBinding() is undefined. */
export function nativeUnavailableReason(): string | undefined {
  nativeBinding();
  return loaded!.reason;
}
