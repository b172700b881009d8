// The targets of the native-backend and quantized-experts issues, checked against one bench run's rows: what was
// measured and whether it meets the target (fractions of peak against the run's highest probe readings, the
// conservative choice).

export interface TargetRow {
  id?: string;
  peakFraction?: number;
  besideFraction?: number;
  bandwidthFraction?: number;
  vsTorch?: number;
  vsOrt?: number;
  ratio?: number;
  ratioPlain?: number;
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
): TargetCheck {
  if (value === undefined) return { target, measured: "not measured" };
  return { target, measured: show(value) + extra, met: ok(value) };
}

export function checkTargets(rows: readonly TargetRow[]): TargetCheck[] {
  const row = (id: string): TargetRow | undefined => rows.find((r) => r.id === id);
  const f32 = row("forward-f32");
  const bf16 = row("forward-bf16");
  const fb = row("forward+backward");
  const beside = (r: TargetRow | undefined): string => (r?.besideFraction !== undefined ? ` (${pct(r.besideFraction)} beside)` : "");
  const out: TargetCheck[] = [
    check("fp32 forward >= 85% of the FMA peak", f32?.peakFraction, (v) => v >= 0.85, pct, beside(f32)),
    check("fp32 forward >= 1.5x PyTorch fp32", f32?.vsTorch, (v) => v >= 1.5, times),
    check("fp32 forward >= 1.4x onnxruntime MoE", f32?.vsOrt, (v) => v >= 1.4, times),
    check(
      "bf16-weight forward >= 75% of the bf16 peak (probe of the path in use)",
      bf16?.peakFraction,
      (v) => v >= 0.75,
      pct,
      beside(bf16),
    ),
    check("bf16-weight forward ahead of PyTorch bf16", bf16?.vsTorch, (v) => v > 1, times),
  ];
  for (const id of ["decode-f32", "decode-bf16"]) {
    const r = row(id);
    out.push(
      check(`${id.replace("-", " ")}: weights streamed at >= 70% of read bandwidth`, r?.bandwidthFraction, (v) => v >= 0.7, pct, beside(r)),
    );
  }
  out.push(
    check("forward+backward <= 3.5x forward (fresh gradients)", fb?.ratioPlain, (v) => v <= 3.5, times),
    check("forward+backward <= 3.5x forward (gradients recycled)", fb?.ratio, (v) => v <= 3.5, times),
  );
  for (const T of [8, 64, 256, 4096]) {
    out.push(check(`forward at T=${T} <= 1.35x its roofline`, row(`roofline-T${T}`)?.rooflineRatio, (v) => v <= 1.35, times));
  }
  const int8 = row("forward-served-int8-int8");
  out.push(
    check("quantized: int8 forward (served weights, int8 activations) >= 2.5x the fp32 forward", int8?.vsF32, (v) => v >= 2.5, times),
    check("quantized: int8 forward >= 70% of the int8 probe", int8?.peakFraction, (v) => v >= 0.7, pct),
  );
  for (const mode of ["int8", "int4"]) {
    const r = row(`decode-served-${mode}-intmp`);
    out.push(check(`quantized: decode ${mode}: codes streamed at >= 75% of read bandwidth`, r?.bandwidthFraction, (v) => v >= 0.75, pct));
  }
  return out;
}
