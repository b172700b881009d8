// Grouped matmul over a quantized rhs (prims/quantized-gmm.ts states the contract and the formats): the codes of at
// most DECODE_ROWS rows of k at a time are decoded into a float64 block, so no float copy of the weights exists;
// float64 accumulation, each scale block's partial sum rounded to the output dtype before its scale.
import { allocate, toBf16, type DType, type TypedArray } from "../../../core/dtype.js";
import { ShapeError } from "../../../core/errors.js";
import type { Tensor } from "../../../core/tensor.js";
import {
  blockK,
  e4m3Value,
  FP4_VALUES,
  TILE_BYTES,
  TILE_K,
  tileColumns,
  tiledCodes,
  type QuantizedGmmParams,
  type WeightFormat,
} from "../../../prims/quantized-gmm.js";
import type { Aval } from "../../../prims/shape-rules.js";

const DECODE_ROWS = 64;

const rounder = (d: DType): ((x: number) => number) => (d === "float32" ? Math.fround : d === "bfloat16" ? (x) => toBf16(x) : (x) => x);

const nibble = (byte: number, odd: number): number => (byte >> (odd * 4)) & 0xf;

/** Offset of the byte holding code (p, j) of group g (j's nibble j & 1 of it for int4) of int8 / int4 codes. */
export function intCodeOffset(f: WeightFormat, tiled: boolean, k: number, n: number, g: number, p: number, j: number): number {
  const i4 = f === "int4";
  if (!tiled) return (g * k + p) * (i4 ? Math.ceil(n / 2) : n) + (i4 ? j >> 1 : j);
  const [c, t] = [tileColumns(f), (g * Math.ceil(k / TILE_K) + Math.floor(p / TILE_K)) * Math.ceil(n / tileColumns(f))];
  return (t + Math.floor(j / c)) * TILE_BYTES + (p % TILE_K) * 64 + (i4 ? (j % c) >> 1 : j % c);
}

/** The code of rhs element (p, j) of group g, decoded (unscaled); tiled: int codes in tiles. */
function codeAt(p: QuantizedGmmParams, c: TypedArray, tiled: boolean, k: number, g: number, q: number, j: number): number {
  const n = p.columns;
  switch (p.format) {
    case "int8":
      return c[intCodeOffset("int8", tiled, k, n, g, q, j)]!;
    case "int4": {
      const v = nibble(c[intCodeOffset("int4", tiled, k, n, g, q, j)]!, j & 1);
      return v >= 8 ? v - 16 : v;
    }
    case "fp8_e4m3":
      return e4m3Value(c[(g * n + j) * k + q]!);
    case "mxfp4": {
      const v = nibble(c[(g * n + j) * (k / 2) + (q >> 1)]!, q & 1);
      return v >= 8 ? -FP4_VALUES[v - 8]! : FP4_VALUES[v]!;
    }
  }
}

/** The scale of block b (along k) of column j of group g. */
function scaleAt(p: QuantizedGmmParams, s: TypedArray, k: number, g: number, b: number, j: number): number {
  const n = p.columns;
  if (p.format === "fp8_e4m3") return s[(g * Math.ceil(n / 128) + (j >> 7)) * Math.ceil(k / 128) + b]!;
  if (p.format === "mxfp4") {
    const e = s[(g * n + j) * (k / 32) + b]!;
    return e === 255 ? NaN : 2 ** (e - 127);
  }
  return s[g * n + j]!;
}

export function quantizedGmm(ins: readonly Tensor[], p: QuantizedGmmParams, out: Aval): TypedArray {
  const [lhs, codes, scales, gs, lhsScales] = ins as [Tensor, Tensor, Tensor, Tensor, Tensor | undefined];
  const [m, k] = lhs.shape as [number, number];
  const n = p.columns;
  const bk = blockK(p.format, k);
  const fl = rounder(out.dtype);
  const o = allocate(out.dtype, m * n);
  const [x, c, s] = [lhs.data, codes.data, scales.data];
  const tiled = tiledCodes(codes);
  const block = new Float64Array(Math.min(DECODE_ROWS, bk) * n);
  let r0 = 0;
  for (let g = 0; g < gs.size; g++) {
    const rows = gs.data[g]!;
    if (rows < 0 || r0 + rows > m) throw new ShapeError(`[quantized_gmm] groupSizes[${g}] = ${rows} runs past the ${m} rows`);
    const acc = new Float64Array(rows * n);
    const partial = new Float64Array(rows * n);
    for (let b0 = 0; b0 < k; b0 += bk) {
      partial.fill(0);
      for (let p0 = b0; p0 < Math.min(k, b0 + bk); p0 += DECODE_ROWS) {
        const p1 = Math.min(k, b0 + bk, p0 + DECODE_ROWS);
        for (let q = p0; q < p1; q++) for (let j = 0; j < n; j++) block[(q - p0) * n + j] = codeAt(p, c, tiled, k, g, q, j);
        for (let r = 0; r < rows; r++)
          for (let q = p0; q < p1; q++) {
            const xv = x[(r0 + r) * k + q]!;
            for (let j = 0; j < n; j++) partial[r * n + j]! += xv * block[(q - p0) * n + j]!;
          }
      }
      for (let r = 0; r < rows; r++) {
        const sl = lhsScales === undefined ? 1 : lhsScales.data[r0 + r]!;
        for (let j = 0; j < n; j++) acc[r * n + j]! += fl(partial[r * n + j]!) * fl(sl * scaleAt(p, s, k, g, b0 / bk, j));
      }
    }
    for (let i = 0; i < rows * n; i++) o[r0 * n + i] = fl(acc[i]!);
    r0 += rows;
  }
  return o;
}
