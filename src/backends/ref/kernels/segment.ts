// Grouped matmuls over consecutive row groups (Megablox gmm / tgmm contracts, SEMANTICS 2.6).
import { allocate, type TypedArray } from "../../../core/dtype.js";
import { ShapeError } from "../../../core/errors.js";
import type { Tensor } from "../../../core/tensor.js";
import type { Aval } from "../../../prims/shape-rules.js";

function groupOffsets(gs: Tensor, rows: number, where: string): number[] {
  const off = [0];
  for (let g = 0; g < gs.size; g++) {
    const s = gs.data[g]!;
    if (s < 0) throw new ShapeError(`[${where}] groupSizes[${g}] = ${s} is negative`);
    off.push(off[g]! + s);
  }
  if (off[gs.size]! > rows) throw new ShapeError(`[${where}] sum(groupSizes) (${off[gs.size]}) > rows (${rows})`);
  return off;
}

/** out[r] = lhs[r] @ rhs[g(r)] for rows of group g; rows past sum(groupSizes) stay 0. */
export function gmm(lhs: Tensor, rhs: Tensor, gs: Tensor, transposeRhs: boolean, out: Aval): TypedArray {
  const [m, k] = lhs.shape as [number, number];
  const n = out.shape[1]!;
  const off = groupOffsets(gs, m, "gmm");
  const o = allocate(out.dtype, m * n);
  // rhs element (g, p, j): [G,k,n] -> (g*k+p)*n+j ; transposed [G,n,k] -> (g*n+j)*k+p
  for (let g = 0; g < gs.size; g++) {
    for (let r = off[g]!; r < off[g + 1]!; r++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let p = 0; p < k; p++) {
          const w = transposeRhs ? rhs.data[(g * n + j) * k + p]! : rhs.data[(g * k + p) * n + j]!;
          acc += lhs.data[r * k + p]! * w;
        }
        o[r * n + j] = acc;
      }
    }
  }
  return o;
}

/** out[g] = lhs_g^T @ rhs_g over the rows of group g; empty groups give 0. */
export function tgmm(lhs: Tensor, rhs: Tensor, gs: Tensor, out: Aval): TypedArray {
  const [m, k] = lhs.shape as [number, number];
  const n = rhs.shape[1]!;
  const off = groupOffsets(gs, m, "tgmm");
  const o = allocate(out.dtype, gs.size * k * n);
  for (let g = 0; g < gs.size; g++) {
    for (let p = 0; p < k; p++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let r = off[g]!; r < off[g + 1]!; r++) acc += lhs.data[r * k + p]! * rhs.data[r * n + j]!;
        o[(g * k + p) * n + j] = acc;
      }
    }
  }
  return o;
}
