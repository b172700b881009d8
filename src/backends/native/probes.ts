// Peak probes of the native kernels' machine, for benchmarks: undefined without the addon.
import { nativeBinding } from "./binding.js";

export interface NativeProbes {
  /** fp32 fma GFLOP/s of the active ISA (fma = 2 flop) */
  fmaPeakGflops(seconds?: number): number;
  /** AVX512_BF16 vdpbf16ps GFLOP/s (0 without it) */
  bf16PeakGflops(seconds?: number): number;
  /** AVX512-VNNI vpdpbusd GOP/s (a multiply-add = 2; 0 where int8 products run on plain loops) */
  int8PeakGops(seconds?: number): number;
  /** AMX-BF16 GFLOP/s (0 without it) */
  amxPeakGflops(seconds?: number): number;
  /** GB/s summing a buffer of `bytes` (default 512 MiB) */
  readBandwidthGBs(bytes?: number): number;
  /**
   * GB/s summing `buffer` (at least 2^18 elements, written: unwritten pages read the zero page). Kept between
   * readings, it spares each one mapping and unmapping its own buffer, which slows whatever runs next.
   */
  readBufferGBs(buffer: Float32Array): number;
}

export function nativeProbes(): NativeProbes | undefined {
  const b = nativeBinding();
  if (b === undefined) return undefined;
  return {
    fmaPeakGflops: (seconds = 0.2) => b.probeFmaPeak(seconds),
    bf16PeakGflops: (seconds = 0.2) => b.probeBf16Peak(seconds),
    int8PeakGops: (seconds = 0.2) => b.probeInt8Peak(seconds),
    amxPeakGflops: (seconds = 0.2) => b.probeAmxPeak(seconds),
    readBandwidthGBs: (bytes = 512 * 2 ** 20) => b.probeReadBandwidth(bytes),
    readBufferGBs: (buffer) => b.probeReadBandwidthOf(buffer),
  };
}
