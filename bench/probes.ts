// Machine peak measured in the same run by the native probes (fp32 FMA, AVX512-BF16 dot, AMX-BF16, read bandwidth).
import { nativeProbes } from "../src/backends/native/index.js";

export interface Probes {
  fp32Gflops?: number;
  bf16Gflops?: number;
  amxGflops?: number;
  readGBps?: number;
}

export function machineProbes(): Probes {
  if (nativeProbes === undefined) return {};
  const p = nativeProbes;
  const nz = (v: number): number | undefined => (v > 0 ? v : undefined);
  return {
    fp32Gflops: p.fmaPeakGflops(0.5),
    bf16Gflops: nz(p.bf16PeakGflops(0.5)),
    amxGflops: nz(p.amxPeakGflops(0.5)),
    readGBps: p.readBandwidthGBs(1 << 30),
  };
}
