// Grouped matmul over a quantized rhs (prims/quantized-gmm.ts states the contract): the codes of DECODE_ROWS rows
// of k at a time are decoded into a float64 block, so no float copy of the weights exists; float64 accumulation.
import { allocate, toBf16, type DType, type TypedArray } from "../../../core/dtype.js";
import { ShapeError } from "../../../core/errors.js";
import type { Tensor } from "../../../core/tensor.js";
import type { QuantizedGmmParams } from "../../../prims/quantized-gmm.js";
import type { Aval } from "../../../prims/shape-rules.js";

const DECODE_ROWS = 64;

const rounder = (d: DType): ((x: number) => number) => (d === "float32" ? Math.fround : d === "bfloat16" ? (x) => toBf16(x) : (x) => x);

/** Codes of rows [p0, p1) of group g, decoded into `block` ([p1 − p0, n], row-major). */
function decodeRows(p: QuantizedGmmParams, codes: TypedArray, k: number, g: number, p0: number, p1: number, block: Float64Array): void {
  const n = p.columns;
  if (p.format === "int8") {
    for (let i = 0; i < (p1 - p0) * n; i++) block[i] = codes[(g * k + p0) * n + i]!;
    return;
  }
  const w = Math.ceil(n / 2);
  for (let q = p0; q < p1; q++)
    for (let j = 0; j < n; j++) {
      const nibble = (codes[(g * k + q) * w + (j >> 1)]! >> ((j & 1) * 4)) & 0xf;
      block[(q - p0) * n + j] = nibble >= 8 ? nibble - 16 : nibble;
    }
}

export function quantizedGmm(ins: readonly Tensor[], p: QuantizedGmmParams, out: Aval): TypedArray {
  const [lhs, codes, scales, gs, lhsScales] = ins as [Tensor, Tensor, Tensor, Tensor, Tensor | undefined];
  const [m, k] = lhs.shape as [number, number];
  const n = p.columns;
  const fl = rounder(out.dtype);
  const o = allocate(out.dtype, m * n);
  const [x, c, s] = [lhs.data, codes.data, scales.data];
  const block = new Float64Array(DECODE_ROWS * n);
  let r0 = 0;
  for (let g = 0; g < gs.size; g++) {
    const rows = gs.data[g]!;
    if (rows < 0 || r0 + rows > m) throw new ShapeError(`[quantized_gmm] groupSizes[${g}] = ${rows} runs past the ${m} rows`);
    const partial = new Float64Array(rows * n);
    for (let p0 = 0; p0 < k; p0 += DECODE_ROWS) {
      const p1 = Math.min(k, p0 + DECODE_ROWS);
      decodeRows(p, c, k, g, p0, p1, block);
      for (let r = 0; r < rows; r++)
        for (let q = p0; q < p1; q++) {
          const xv = x[(r0 + r) * k + q]!;
          for (let j = 0; j < n; j++) partial[r * n + j]! += xv * block[(q - p0) * n + j]!;
        }
    }
    // one scale block along k: out = fl(fl(partial) · fl(sl · s))
    for (let r = 0; r < rows; r++) {
      const sl = lhsScales === undefined ? 1 : lhsScales.data[r0 + r]!;
      for (let j = 0; j < n; j++) o[(r0 + r) * n + j] = fl(fl(partial[r * n + j]!) * fl(sl * s[g * n + j]!));
    }
    r0 += rows;
  }
  return o;
}
