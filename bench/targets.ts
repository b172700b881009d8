// The targets of the near-peak and quantized-experts issues, checked against one bench run's rows: what was measured
// and whether it meets the target. Fractions are of the probe read beside the measurement (a VM's speed drifts within
// minutes), the fraction of the run's highest reading in parentheses; a target the CPU cannot run shows "-".

export interface TargetRow {
  id?: string;
  peakFraction?: number;
  besideFraction?: number;
  bandwidthFraction?: number;
  vsTorch?: number;
  vsOrt?: number;
  ratio?: number;
  ratioPlain?: number;
  vsBlas?: number;
  /** the float32 layer's time over the row's, timed alternately (> 1: faster) */
  vsF32?: number;
  /** the row's time over its roofline (max of weight bytes ÷ read probe, FLOPs ÷ FMA probe) */
  rooflineRatio?: number;
}

export interface TargetCheck {
  target: string;
  measured: string;
  /** undefined: not measured in this run (a skipped peer, --no-backward, ...) */
  met?: boolean;
}

const pct = (v: number): string => `${(100 * v).toFixed(0)}%`;
const times = (v: number): string => `${v.toFixed(2)}x`;

function check(
  target: string,
  value: number | undefined,
  ok: (v: number) => boolean,
  show: (v: number) => string,
  extra = "",
  possible: (v: number) => boolean = () => true,
): TargetCheck {
  if (value === undefined) return { target, measured: "not measured" };
  // past the physical bound (over 100% of a probe, under 1x a roofline): the probe beside under-read, no verdict
  if (!possible(value)) return { target, measured: `${show(value)}${extra}: past its bound, so the probe beside under-read; no verdict` };
  return { target, measured: show(value) + extra, met: ok(value) };
}

/** The run's highest probe readings (bench/probes.ts), for the bounds a target's note states. */
export interface TargetProbes {
  fp32Gflops?: number | undefined;
  int8Gops?: number | undefined;
}

export function checkTargets(rows: readonly TargetRow[], bf16Path?: string, probes: TargetProbes = {}): TargetCheck[] {
  const row = (id: string): TargetRow | undefined => rows.find((r) => r.id === id);
  const f32 = row("forward-f32");
  const bf16 = row("forward-bf16");
  const fb = row("forward+backward");
  // a fraction of the probe read beside the measurement, the fraction of the run's highest reading in parentheses
  const besideCheck = (target: string, r: TargetRow | undefined, highest: number | undefined, min: number): TargetCheck =>
    check(
      target,
      r?.besideFraction,
      (v) => v >= min,
      pct,
      highest !== undefined ? ` (${pct(highest)} of the highest reading)` : "",
      (v) => v <= 1,
    );
  const out: TargetCheck[] = [
    besideCheck("fp32 forward >= 80% of the FMA probe beside", f32, f32?.peakFraction, 0.8),
    check("fp32 forward >= 1.5x onnxruntime com.microsoft.MoE", f32?.vsOrt, (v) => v >= 1.5, times),
    check("fp32 forward >= 1.5x PyTorch (Hugging Face-style block)", f32?.vsTorch, (v) => v >= 1.5, times),
    check("fp32 forward >= 1.2x OpenBLAS doing only the expert matmuls", f32?.vsBlas, (v) => v >= 1.2, times),
    bf16Path === "amx"
      ? besideCheck("bf16 forward on AMX >= 40% of the AMX probe beside", bf16, bf16?.peakFraction, 0.4)
      : { target: "bf16 forward on AMX >= 40% of the AMX probe beside", measured: "no AMX on this CPU" },
    bf16Path === "dpbf16"
      ? besideCheck("bf16 forward with vdpbf16ps >= 75% of its probe beside", bf16, bf16?.peakFraction, 0.75)
      : { target: "bf16 forward with vdpbf16ps >= 75% of its probe beside", measured: `bf16 path ${bf16Path ?? "-"}` },
  ];
  for (const id of ["decode-f32", "decode-bf16"]) {
    const r = row(id);
    out.push(besideCheck(`${id.replace("-", " ")}: weights streamed at >= 80% of the read probe beside`, r, r?.bandwidthFraction, 0.8));
  }
  out.push(check("forward+backward <= 3.4x forward, fresh gradients (plain valueAndGrad)", fb?.ratioPlain, (v) => v <= 3.4, times));
  for (const T of [8, 64, 256, 4096]) {
    out.push(
      check(
        `forward at T=${T} <= 1.35x its roofline`,
        row(`roofline-T${T}`)?.rooflineRatio,
        (v) => v <= 1.35,
        times,
        "",
        (v) => v >= 1,
      ),
    );
  }
  const int8 = row("forward-served-int8-int8");
  out.push(
    // the int8 layer cannot beat the fp32 one by more than the int8 probe beats the FMA probe, times fp32's distance from it
    check(
      "quantized: int8 forward (served weights, int8 activations) >= 2.5x the fp32 forward",
      int8?.vsF32,
      (v) => v >= 2.5,
      times,
      probes.int8Gops !== undefined && probes.fp32Gflops !== undefined
        ? ` (the int8 probe is ${times(probes.int8Gops / probes.fp32Gflops)} the FMA probe here)`
        : "",
    ),
    besideCheck("quantized: int8 forward >= 70% of the int8 probe beside", int8, int8?.peakFraction, 0.7),
  );
  for (const mode of ["int8", "int4"]) {
    const r = row(`decode-served-${mode}-intmp`);
    out.push(besideCheck(`quantized: decode ${mode}: codes streamed at >= 75% of the read probe beside`, r, r?.bandwidthFraction, 0.75));
  }
  const bf = row("decode-served-int4-intmp-bf16");
  out.push(
    besideCheck(
      "quantized (extra, not in issue 12): decode int4, bfloat16 layer: codes streamed at >= 75% of the read probe beside",
      bf,
      bf?.bandwidthFraction,
      0.75,
    ),
  );
  return out;
}
