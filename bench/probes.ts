// Machine peak measured in the same run: native probes when the addon provides them.
import { binding } from "../src/backends/native/binding.js";

export interface Probes {
  fp32Gflops?: number;
  bf16Gflops?: number;
  readGBps?: number;
}

interface ProbeBinding {
  probeFmaPeak?: (seconds: number) => number;
  probeBf16Peak?: (seconds: number) => number;
  probeReadBandwidth?: (bytes: number) => number;
}

export function machineProbes(): Probes {
  const b = binding as unknown as ProbeBinding | undefined;
  if (b === undefined) return {};
  const out: Probes = {};
  if (b.probeFmaPeak) out.fp32Gflops = b.probeFmaPeak(0.5);
  if (b.probeBf16Peak) out.bf16Gflops = b.probeBf16Peak(0.5);
  if (b.probeReadBandwidth) out.readGBps = b.probeReadBandwidth(1 << 30);
  return out;
}
