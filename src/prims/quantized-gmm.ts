// A grouped matmul whose rhs stays in a quantized storage format (serve mode): codes plus scales, decoded block by
// block inside the kernel, never widened into a float copy of the weights.
//
//   out[r,j] = fl( Σ_b fl(Σ_{p∈b} lhs[r,p]·c[g,p,j]) · fl(sl[r]·s[g,b,j]) )     g: the group of row r
//
// c is the decoded code (an exact small number), b runs over the format's scale blocks along k, sl is the lhs's
// per-row scale (1 without one: weight-only), fl rounds to the output dtype. Rows past sum(groupSizes) are 0. With
// one block this is the quantized matmul of ops/quantize.ts exactly: (lhs · q) · s, or (q_lhs · q) · (s_lhs · s).
//
// Formats (rhs logically [G,k,n]; fp8 and mxfp4 keep the checkpoints' [out, in] = [n, k] order):
//   int8      codes int8 [G,k,n], two's complement;                       scales float32 [G,1,n] (one block)
//   int4      codes uint8 [G,k,⌈n/2⌉], column j in byte j>>1, low nibble = even j, two's complement nibbles;
//             scales float32 [G,1,n] (one block)
//   fp8_e4m3  codes uint8 [G,n,k], float8_e4m3fn bits (DeepSeek-V3);    scales float32 [G,⌈n/128⌉,⌈k/128⌉]
//             (weight_scale_inv: one per 128×128 tile, blocks of 128 along k)
//   mxfp4     codes uint8 [G,n,k/2], row p in byte p>>1, low nibble = even p, e2m1 codes (GPT-OSS);
//             scales uint8 [G,n,k/32], e8m0: 2^(s − 127) (blocks of 32 along k)
// int8 and int4 codes may also come in tiles, the order the native decode streams read them (one sequential pass per
// chunk of 64 rows of k): codes [G,⌈k/64⌉,⌈n/c⌉,4096], tile [g,t,q] holding rows 64t.. of columns c·q.. as 64 rows
// of 64 bytes laid out as above (c = 64 int8 or 128 int4 columns), zero past k and n. Serving storage is tiled
// (ops/quantized-weight.ts); checkpoints hold rows.
import { DTypeError, ShapeError } from "../core/errors.js";
import { fmt, shapesEqual, type Aval } from "../core/shape.js";

export type WeightFormat = "int8" | "int4" | "fp8_e4m3" | "mxfp4";
export const WEIGHT_FORMATS: readonly WeightFormat[] = ["int8", "int4", "fp8_e4m3", "mxfp4"];

/** The scale blocks' length along k. */
export const blockK = (f: WeightFormat, k: number): number => (f === "fp8_e4m3" ? 128 : f === "mxfp4" ? 32 : k);

/** float8_e4m3fn: sign, 4 exponent bits (bias 7), 3 mantissa bits; no infinities, S.1111.111 is NaN. */
export function e4m3Value(code: number): number {
  const [e, m] = [(code >> 3) & 15, code & 7];
  const v = e === 15 && m === 7 ? NaN : e === 0 ? m * 2 ** -9 : (8 + m) * 2 ** (e - 10);
  return code & 128 ? -v : v;
}

/** e2m1 (FP4) codes 0–7; 8–15 are their negatives. */
export const FP4_VALUES: readonly number[] = [0, 0.5, 1, 1.5, 2, 3, 4, 6];

export interface QuantizedGmmParams {
  format: WeightFormat;
  /** n: the rhs's columns (packed codes do not show it) */
  columns: number;
}

/** Rows of k per tile of the tiled int8 / int4 codes, bytes per tile, and columns per tile row. */
export const [TILE_K, TILE_BYTES] = [64, 4096];
export const tileColumns = (f: WeightFormat): number => (f === "int4" ? 128 : 64);
/** Whether codes of this shape are tiled (rows are 3-D). */
export const tiledCodes = (codes: { shape: readonly number[] }): boolean => codes.shape.length === 4;

/** The codes' and scales' avals of a [G,k,n] weight in `format` (tiled: int8 / int4 codes in tiles). */
export function weightLayout(format: WeightFormat, G: number, k: number, n: number, tiled = false): { codes: Aval; scales: Aval } {
  const c = Math.ceil;
  if (format === "fp8_e4m3")
    return { codes: { shape: [G, n, k], dtype: "uint8" }, scales: { shape: [G, c(n / 128), c(k / 128)], dtype: "float32" } };
  if (format === "mxfp4")
    return { codes: { shape: [G, n, c(k / 2)], dtype: "uint8" }, scales: { shape: [G, n, c(k / 32)], dtype: "uint8" } };
  const dtype = format === "int8" ? "int8" : "uint8";
  const codes: Aval = tiled
    ? { shape: [G, c(k / TILE_K), c(n / tileColumns(format)), TILE_BYTES], dtype }
    : { shape: format === "int8" ? [G, k, n] : [G, k, c(n / 2)], dtype };
  return { codes, scales: { shape: [G, 1, n], dtype: "float32" } };
}

/** Inputs: lhs [m,k] (float, or int32 values with lhsScales [m,1] float32), codes, scales, groupSizes [G] int32. */
export function quantizedGmmShape(ins: readonly Aval[], p: QuantizedGmmParams): Aval[] {
  const [l, c, s, g, ls] = ins;
  if (l === undefined || c === undefined || s === undefined || g === undefined || ins.length > 5)
    throw new ShapeError(`[quantized_gmm] expects lhs, codes, scales, groupSizes (and lhs scales), got ${ins.length} inputs`);
  if (!WEIGHT_FORMATS.includes(p.format)) throw new ShapeError(`[quantized_gmm] unknown format ${String(p.format)}`);
  const tiled = tiledCodes(c);
  if (g.dtype !== "int32" || g.shape.length !== 1 || l.shape.length !== 2 || !(c.shape.length === 3 || tiled))
    throw new ShapeError(`[quantized_gmm] lhs ${fmt(l.shape)} must be [m,k], codes 3-D (4-D: tiles), groupSizes 1-D int32`);
  const [m, k] = l.shape as [number, number];
  if (p.format === "mxfp4" && k % 32 !== 0) throw new ShapeError(`[quantized_gmm] mxfp4 needs k a multiple of 32, got ${k}`);
  const want = weightLayout(p.format, g.shape[0]!, k, p.columns, tiled);
  for (const [what, a, w] of [
    ["codes", c, want.codes],
    ["scales", s, want.scales],
  ] as const)
    if (!shapesEqual(a.shape, w.shape) || a.dtype !== w.dtype)
      throw new ShapeError(`[quantized_gmm] ${p.format} ${what} ${a.dtype}${fmt(a.shape)}: expected ${w.dtype}${fmt(w.shape)}`);
  const intLhs = l.dtype === "int32";
  if (intLhs !== (ls !== undefined) || (ls !== undefined && (ls.dtype !== "float32" || !shapesEqual(ls.shape, [m, 1]))))
    throw new DTypeError(`[quantized_gmm] an int32 lhs needs float32 lhs scales [${m},1], a float lhs none`);
  if (l.dtype === "int8" || l.dtype === "uint8") throw new DTypeError(`[quantized_gmm] lhs must be float or int32, got ${l.dtype}`);
  return [{ shape: [m, p.columns], dtype: intLhs ? "float32" : l.dtype }];
}
