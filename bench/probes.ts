// Machine peak measured in the same run by the native probes (fp32 FMA, AVX512-BF16 dot, int8 dot, AMX-BF16, read bandwidth).
import { zeroed } from "../src/core/dtype.js";
import { nativeProbes } from "../src/backends/native/probes.js";
import { median, timeIt } from "./harness.js";

export interface Probes {
  fp32Gflops?: number;
  bf16Gflops?: number;
  /** int8 dot products (vpdpbusd), GOP/s */
  int8Gops?: number;
  amxGflops?: number;
  readGBps?: number;
}

const nz = (v: number | undefined): number | undefined => (v !== undefined && v > 0 ? v : undefined);
const maxOf = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined ? b : b === undefined ? a : Math.max(a, b);

/** One reading of every probe. */
export function machineProbes(seconds = 0.5): Probes {
  const p = nativeProbes();
  if (p === undefined) return {};
  return {
    fp32Gflops: p.fmaPeakGflops(seconds),
    bf16Gflops: nz(p.bf16PeakGflops(seconds)),
    int8Gops: nz(p.int8PeakGops(seconds)),
    amxGflops: nz(p.amxPeakGflops(seconds)),
    readGBps: p.readBandwidthGBs(1 << 30),
  };
}

/** A block of timed runs and, where the probe exists, the mean of its readings before and after the block. */
export interface TimedBlock {
  median_s: number;
  runs_s: number[];
  beside?: number;
}

/**
 * The peaks a run reports: the highest reading of each probe over the run (probes are read at the start and again
 * next to each timed measurement, since a VM's speed drifts). The highest reading is the conservative choice:
 * fractions of it are the lowest.
 */
export class PeakTracker {
  peak: Probes = {};
  readings = 0;
  // timeBesideReads' 256 MB, kept: a fresh buffer per reading was mapped and unmapped around every run, and the
  // unmapping cost the run after it 0.1-0.25 ms (a decode layer; bench/RESULTS.md)
  #besideBuffer: Float32Array | undefined;

  read(seconds = 0.5): Probes {
    const r = machineProbes(seconds);
    this.readings++;
    for (const k of Object.keys(r) as (keyof Probes)[]) this.peak[k] = maxOf(this.peak[k], r[k]);
    return r;
  }

  /**
   * timeIt(f, runs) between two short probe readings; `beside`: the mean of the two readings of `key` (the
   * machine's speed while f ran), undefined without that probe.
   */
  timeBetweenReadings(f: () => unknown, runs: number, key: keyof Probes, warmup = 1): TimedBlock {
    const before = this.read(0.3)[key];
    const t = timeIt(f, runs, warmup);
    const after = this.read(0.3)[key];
    return before !== undefined && after !== undefined ? { ...t, beside: (before + after) / 2 } : t;
  }

  /**
   * f timed run by run, each run between two readings of the read-bandwidth probe over one buffer of 256 MB: this VM's read
   * bandwidth switches between regimes (about 34 and 62 GB/s on the Zen 4 VM) for seconds at a time, so a reading
   * taken a second away from a run can belong to another regime. `readsGBps[i]`: the mean of the readings either side
   * of run i (none without the native probes); `besideFraction`: the median over runs of (bytes ÷ the run's time) ÷
   * that mean. Every reading counts towards the peak.
   */
  timeBesideReads(
    f: () => unknown,
    runs: number,
    bytes: number,
  ): { median_s: number; runs_s: number[]; readsGBps: number[]; besideFraction?: number } {
    const probe = nativeProbes();
    if (probe === undefined) return { ...timeIt(f, runs), readsGBps: [] };
    const buffer = (this.#besideBuffer ??= zeroed(Float32Array, 1 << 26).fill(1));
    const reading = (): number => {
      const r = probe.readBufferGBs(buffer);
      this.peak.readGBps = maxOf(this.peak.readGBps, r);
      this.readings++;
      return r;
    };
    f();
    const runs_s: number[] = [];
    const readsGBps: number[] = [];
    let before = reading();
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      f();
      runs_s.push((performance.now() - t0) / 1000);
      const after = reading();
      readsGBps.push((before + after) / 2);
      before = after;
    }
    const fractions = runs_s.map((s, i) => bytes / s / 1e9 / readsGBps[i]!);
    return { median_s: median(runs_s), runs_s, readsGBps, besideFraction: median(fractions) };
  }
}
