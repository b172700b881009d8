// allclose helpers for tests: |actual - ref| <= atol + rtol·|ref| elementwise, plus NMSE.
import type { DType } from "../../src/core/dtype.js";
import { Tensor } from "../../src/core/tensor.js";

export interface Tol {
  atol?: number;
  rtol?: number;
  /** NaN in the same place on both sides counts as equal (default true). */
  equalNan?: boolean;
}

export type Numbers = Tensor | ArrayLike<number>;

function values(x: Numbers): ArrayLike<number> {
  return x instanceof Tensor ? x.data : x;
}

export interface CloseReport {
  ok: boolean;
  /** max |a - r| over finite pairs */
  maxAbsErr: number;
  /** max |a - r| / |r| over finite pairs with r != 0 */
  maxRelErr: number;
  /** the element that exceeds atol + rtol|r| by the most (undefined when ok) */
  worst: { index: number; actual: number; expected: number } | undefined;
  lengthMismatch: boolean;
}

/** Per-dtype default tolerance for results computed in that dtype. */
export function tolFor(dtype: DType): Required<Pick<Tol, "atol" | "rtol">> {
  switch (dtype) {
    case "float64":
      return { atol: 1e-12, rtol: 1e-12 };
    case "float32":
      return { atol: 1e-6, rtol: 1e-5 };
    case "bfloat16":
      return { atol: 1e-2, rtol: 1e-2 };
    case "int32":
    case "int8":
    case "uint8":
      return { atol: 0, rtol: 0 };
    default:
      return dtype satisfies never;
  }
}

/** Machine epsilon of each dtype (int32 results are compared exactly). */
export const EPS: Readonly<Record<DType, number>> = {
  float64: 2 ** -52,
  float32: 2 ** -23,
  bfloat16: 2 ** -7,
  int32: 0,
  int8: 0,
  uint8: 0,
};

/** Smallest normal value of each dtype: the floor of atol, so denormal results need not match to the last bit. */
const TINY: Readonly<Record<DType, number>> = { float64: 2 ** -1022, float32: 2 ** -126, bfloat16: 2 ** -126, int32: 0, int8: 0, uint8: 0 };

/** NMSE bound of matmul-like results in `dtype` against float64 (ggml's defaults). */
export function nmseBound(dtype: DType): number {
  return dtype === "float64" ? 1e-24 : dtype === "bfloat16" ? 1e-5 : dtype === "float32" ? 1e-10 : 0;
}

/**
 * Tolerance of a result stored in `dtype` against the float64 reference: rtol = c·eps(dtype), and
 * atol = c·eps·sqrt(k)·scale for a contraction of length k > 1 (scale: the size of the result, its rms),
 * since summation error grows with k; for k <= 1 only the dtype's smallest normal.
 */
export function tolVsF64(dtype: DType, k = 1, scale = 1, c = 4): Required<Pick<Tol, "atol" | "rtol">> {
  const eps = EPS[dtype];
  const atol = k > 1 ? c * eps * Math.sqrt(k) * scale : 0;
  return { rtol: c * eps, atol: Math.max(atol, TINY[dtype]) };
}

export function closeReport(actual: Numbers, expected: Numbers, tol: Tol = {}): CloseReport {
  const a = values(actual);
  const r = values(expected);
  const atol = tol.atol ?? 1e-12;
  const rtol = tol.rtol ?? 1e-12;
  const equalNan = tol.equalNan ?? true;
  const report: CloseReport = { ok: true, maxAbsErr: 0, maxRelErr: 0, worst: undefined, lengthMismatch: a.length !== r.length };
  if (report.lengthMismatch) return { ...report, ok: false };
  let worstExcess = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = r[i]!;
    let bad: boolean;
    let excess = 0;
    if (Number.isNaN(x) || Number.isNaN(y)) {
      bad = !(equalNan && Number.isNaN(x) && Number.isNaN(y));
      excess = bad ? Infinity : 0;
    } else if (!Number.isFinite(x) || !Number.isFinite(y)) {
      bad = x !== y;
      excess = bad ? Infinity : 0;
    } else {
      const d = Math.abs(x - y);
      report.maxAbsErr = Math.max(report.maxAbsErr, d);
      if (y !== 0) report.maxRelErr = Math.max(report.maxRelErr, d / Math.abs(y));
      excess = d - (atol + rtol * Math.abs(y));
      bad = excess > 0;
    }
    if (bad && (report.worst === undefined || excess > worstExcess)) {
      report.worst = { index: i, actual: x, expected: y };
      worstExcess = excess;
    }
    if (bad) report.ok = false;
  }
  return report;
}

export function allclose(actual: Numbers, expected: Numbers, tol: Tol = {}): boolean {
  return closeReport(actual, expected, tol).ok;
}

/** Throws a readable error unless allclose; `what` names the quantity. */
export function assertAllClose(actual: Numbers, expected: Numbers, tol: Tol = {}, what = "values"): void {
  if (actual instanceof Tensor && expected instanceof Tensor && actual.shape.join() !== expected.shape.join()) {
    throw new Error(`${what}: shape [${actual.shape.join(",")}] != expected [${expected.shape.join(",")}]`);
  }
  const rep = closeReport(actual, expected, tol);
  if (rep.lengthMismatch) {
    throw new Error(`${what}: ${values(actual).length} elements != expected ${values(expected).length}`);
  }
  if (!rep.ok) {
    const w = rep.worst!;
    throw new Error(
      `${what}: not close (atol=${tol.atol ?? 1e-12}, rtol=${tol.rtol ?? 1e-12}): at ${w.index} got ${w.actual}, expected ${w.expected}; ` +
        `max abs err ${rep.maxAbsErr.toExponential(3)}, max rel err ${rep.maxRelErr.toExponential(3)}`,
    );
  }
}

/** Exact equality of two number sequences (NaN equals NaN, -0 equals 0); throws with the first difference. */
export function assertExact(actual: Numbers, expected: Numbers, what = "values"): void {
  assertAllClose(actual, expected, { atol: 0, rtol: 0 }, what);
}

/** Normalised mean squared error sum((a-r)²)/sum(r²); sum(a²) when r is all zero; 0 for empty input. */
export function nmse(actual: Numbers, expected: Numbers): number {
  const a = values(actual);
  const r = values(expected);
  if (a.length !== r.length) throw new Error(`nmse: ${a.length} vs ${r.length} elements`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - r[i]!;
    num += d * d;
    den += r[i]! * r[i]!;
  }
  if (a.length === 0) return 0;
  return den === 0 ? num : num / den;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Independent bfloat16 rounding (round-to-nearest-even on the float32 bit pattern). */
export function bf16(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  if (Number.isNaN(f32[0])) return NaN;
  const lsb = (bits >>> 16) & 1;
  u32[0] = (((bits + 0x7fff + lsb) >>> 16) << 16) >>> 0;
  return f32[0];
}

/** The value a float64 number takes when stored in `dtype` (as the kernels store results). */
export function roundTo(dtype: DType, x: number): number {
  switch (dtype) {
    case "float64":
      return x;
    case "float32":
      return Math.fround(x);
    case "bfloat16":
      return bf16(Math.fround(x));
    case "int32":
      return x | 0;
    case "int8":
      return (x << 24) >> 24;
    case "uint8":
      return x & 0xff;
    default:
      return dtype satisfies never;
  }
}

/** Identical values: Object.is elementwise (so -0 != +0), any NaN equal to any NaN (payloads may differ); throws at the first difference. */
export function assertIdentical(actual: Numbers, expected: Numbers, what = "values"): void {
  const a = values(actual);
  const r = values(expected);
  if (a.length !== r.length) throw new Error(`${what}: ${a.length} elements != expected ${r.length}`);
  let bad = 0;
  let first = -1;
  for (let i = 0; i < a.length; i++) {
    if (Object.is(a[i], r[i]) || (Number.isNaN(a[i]) && Number.isNaN(r[i]))) continue;
    if (first < 0) first = i;
    bad++;
  }
  if (bad > 0) throw new Error(`${what}: ${bad} of ${a.length} values differ; first at ${first}: got ${a[first]}, expected ${r[first]}`);
}
