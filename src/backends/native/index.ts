// The native CPU backend: fp32 grouped / batched matmuls in the Node-API addon (native/). It implements a
// subset of the primitives; supports() is false for the rest so the dispatcher falls back to `ref`.
// Not registered anywhere: `nativeBackend` is undefined when the addon is unavailable.
import type { TypedArray } from "../../core/dtype.js";
import { DTypeError, ShapeError, UnsupportedError } from "../../core/errors.js";
import { shapesEqual } from "../../core/shape.js";
import type { Tensor } from "../../core/tensor.js";
import { Prim, type Params } from "../../prims/prims.js";
import type { Aval } from "../../prims/shape-rules.js";
import type { Backend } from "../backend.js";
import { binding, unavailableReason, type NativeBf16Path, type NativeBinding, type NativeIsa } from "./binding.js";

export { bf16Bits, NATIVE_FFN_ACTIVATIONS, nativeMoeFfn, nativeMoeFfnApplies } from "./moe-ffn.js";
export type { NativeBf16Path } from "./binding.js";

export interface NativeInfo {
  available: boolean;
  /** Why the addon is unavailable. */
  reason?: string;
  /** ISA the kernels use, and the best this CPU supports. */
  isa?: NativeIsa;
  bestIsa?: NativeIsa;
  /** Threads the kernels use (0 when unavailable). */
  threads: number;
}

export function nativeInfo(): NativeInfo {
  if (binding === undefined) return { available: false, reason: unavailableReason, threads: 0 };
  return { available: true, isa: binding.isa(), bestIsa: binding.bestIsa(), threads: binding.threads() };
}

/** Threads for the native kernels: n >= 1, or 0 for the number of CPUs. Returns false (and does nothing) when the addon is unavailable. */
export function setNativeThreads(n: number): boolean {
  if (binding === undefined) return false;
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`[native] thread count ${n} must be a non-negative integer`);
  binding.setThreads(n);
  return true;
}

/** Whether the CPU multiplies bf16 natively (AVX512_BF16; AMX-BF16 is reported by nativeBf16Path()). False without the addon. */
export function nativeBf16Supported(): boolean {
  return binding?.cpuHasAvx512Bf16() ?? false;
}

/** The path the fused kernels take for bf16 weights ("widen" | "dpbf16" | "amx"), undefined without the addon. */
export function nativeBf16Path(): NativeBf16Path | undefined {
  return binding?.bf16Path();
}

/** Choose the bf16 path (tests, benchmarks); throws for one the CPU lacks. Returns false without the addon. */
export function setNativeBf16Path(path: NativeBf16Path): boolean {
  if (binding === undefined) return false;
  binding.setBf16Path(path);
  return true;
}

/** Peak probes on the native thread pool with the current thread count; undefined without the addon. */
export interface NativeProbes {
  /** fp32 fma GFLOP/s of the active ISA (fma = 2 flop) */
  fmaPeakGflops(seconds?: number): number;
  /** AVX512_BF16 vdpbf16ps GFLOP/s (0 without it) */
  bf16PeakGflops(seconds?: number): number;
  /** AMX-BF16 GFLOP/s (0 without it) */
  amxPeakGflops(seconds?: number): number;
  /** GB/s summing a buffer of `bytes` (default 512 MiB) */
  readBandwidthGBs(bytes?: number): number;
}

export const nativeProbes: NativeProbes | undefined =
  binding === undefined
    ? undefined
    : {
        fmaPeakGflops: (seconds = 0.2) => binding!.probeFmaPeak(seconds),
        bf16PeakGflops: (seconds = 0.2) => binding!.probeBf16Peak(seconds),
        amxPeakGflops: (seconds = 0.2) => binding!.probeAmxPeak(seconds),
        readBandwidthGBs: (bytes = 512 * 2 ** 20) => binding!.probeReadBandwidth(bytes),
      };

/** Bytes the native one-shot workspace holds (0 without the addon); releaseNativeWorkspace() frees it. */
export function nativeWorkspaceBytes(): number {
  return binding?.workspaceBytes() ?? 0;
}

export function releaseNativeWorkspace(): void {
  binding?.releaseWorkspace();
}

const isF32 = (t: Tensor | undefined, rank: number): boolean => t?.dtype === "float32" && t.shape.length === rank;
const isI32Vector = (t: Tensor | undefined): boolean => t?.dtype === "int32" && t.shape.length === 1;

/** Elementwise float32 operands from this many elements on run natively (bit-identical to the ref kernels). */
export const MIN_NATIVE_ELEMENTWISE = 1 << 16;
const BINARY_OPS: Readonly<Record<string, number>> = { [Prim.Add]: 0, [Prim.Sub]: 1, [Prim.Mul]: 2, [Prim.Div]: 3 };

function supports(prim: Prim, ins: readonly Tensor[]): boolean {
  switch (prim) {
    case Prim.Gmm:
      return ins.length === 3 && isF32(ins[0], 2) && isF32(ins[1], 3) && isI32Vector(ins[2]);
    case Prim.Tgmm:
      return ins.length === 3 && isF32(ins[0], 2) && isF32(ins[1], 2) && isI32Vector(ins[2]);
    case Prim.BatchMatmul:
      return ins.length === 2 && isF32(ins[0], 3) && isF32(ins[1], 3);
    case Prim.TopK:
      return ins.length === 1 && ins[0]!.dtype === "float32" && ins[0]!.shape.length >= 1;
    case Prim.Argsort:
      return ins.length === 1 && isI32Vector(ins[0]);
    case Prim.Add:
    case Prim.Sub:
    case Prim.Mul:
    case Prim.Div:
      // large float32 operands only: below, the call costs more than the TypeScript loop
      return ins.length === 2 && ins.every((t) => t.dtype === "float32" && t.data instanceof Float32Array) && ins[0]!.size >= MIN_NATIVE_ELEMENTWISE && shapesEqual(ins[0]!.shape, ins[1]!.shape);
    default:
      return false;
  }
}

function f32(t: Tensor, what: string): Float32Array {
  if (t.dtype !== "float32" || !(t.data instanceof Float32Array)) {
    throw new DTypeError(`[native] ${what} must be float32, got ${t.dtype}`);
  }
  return t.data;
}

function i32(t: Tensor, what: string): Int32Array {
  if (t.dtype !== "int32" || !(t.data instanceof Int32Array)) {
    throw new DTypeError(`[native] ${what} must be int32, got ${t.dtype}`);
  }
  return t.data;
}

/** Same checks and messages as the ref kernels: sizes >= 0 with sum <= rows. */
function checkGroups(gs: Int32Array, rows: number, where: string): void {
  let sum = 0;
  for (let g = 0; g < gs.length; g++) {
    const s = gs[g]!;
    if (s < 0) throw new ShapeError(`[${where}] groupSizes[${g}] = ${s} is negative`);
    sum += s;
  }
  if (sum > rows) throw new ShapeError(`[${where}] sum(groupSizes) (${sum}) > rows (${rows})`);
}

function run(b: NativeBinding, prim: Prim, ins: readonly Tensor[], params: Params<Prim>, outs: readonly Aval[]): TypedArray[] {
  switch (prim) {
    case Prim.Gmm: {
      const [lhs, rhs, gs] = [ins[0]!, ins[1]!, ins[2]!];
      const [m, k] = lhs.shape as [number, number];
      const n = outs[0]!.shape[1]!;
      const sizes = i32(gs, "groupSizes");
      checkGroups(sizes, m, "gmm");
      const out = new Float32Array(m * n);
      const { transposeRhs } = params as Params<Prim.Gmm>;
      b.gmm(f32(lhs, "lhs"), f32(rhs, "rhs"), sizes, m, k, n, transposeRhs, out);
      return [out];
    }
    case Prim.Tgmm: {
      const [lhs, rhs, gs] = [ins[0]!, ins[1]!, ins[2]!];
      const [m, k] = lhs.shape as [number, number];
      const n = rhs.shape[1]!;
      const sizes = i32(gs, "groupSizes");
      checkGroups(sizes, m, "tgmm");
      const out = new Float32Array(sizes.length * k * n);
      b.tgmm(f32(lhs, "lhs"), f32(rhs, "rhs"), sizes, m, k, n, out);
      return [out];
    }
    case Prim.BatchMatmul: {
      const [x, y] = [ins[0]!, ins[1]!];
      const [batch, m, k] = x.shape as [number, number, number];
      const n = y.shape[2]!;
      const out = new Float32Array(batch * m * n);
      b.bmm(f32(x, "lhs"), f32(y, "rhs"), batch, m, k, n, out);
      return [out];
    }
    case Prim.TopK: {
      const x = ins[0]!;
      const n = x.shape[x.shape.length - 1]!;
      const rows = n === 0 ? 0 : x.size / n;
      const { k } = params as Params<Prim.TopK>;
      const vals = new Float32Array(rows * k);
      const ids = new Int32Array(rows * k);
      b.topk(f32(x, "x"), rows, n, k, vals, ids);
      return [vals, ids];
    }
    case Prim.Argsort: {
      const out = new Int32Array(ins[0]!.size);
      b.argsortI32(i32(ins[0]!, "keys"), out);
      return [out];
    }
    case Prim.Add:
    case Prim.Sub:
    case Prim.Mul:
    case Prim.Div: {
      const out = new Float32Array(ins[0]!.size);
      b.binaryF32(BINARY_OPS[prim]!, f32(ins[0]!, "lhs"), f32(ins[1]!, "rhs"), out);
      return [out];
    }
    default:
      throw new UnsupportedError(`[native] ${prim} is not implemented by the native backend`);
  }
}

function makeBackend(b: NativeBinding): Backend {
  return {
    name: "native",
    supports,
    run<P extends Prim>(prim: P, ins: readonly Tensor[], params: Params<P>, outs: readonly Aval[]): TypedArray[] {
      return run(b, prim, ins, params, outs);
    },
  };
}

/** The native backend, or undefined when the addon is unavailable (see nativeInfo().reason). */
export const nativeBackend: Backend | undefined = binding === undefined ? undefined : makeBackend(binding);
