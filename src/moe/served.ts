// The dense matmuls over weights held quantized: each expert einsum of the dense path is a grouped matmul with one
// group of rows per expert (Prim.QuantizedGmm), the rows of every expert being all tokens (dropless) or its capacity
// slots; a shared MLP kernel is one group of all tokens.
// Legend: B batch, S sequence, N context partitions, C capacity, E experts, M model dim, H expert hidden.
import { ShapeError } from "../core/errors.js";
import { full, type Tensor } from "../core/tensor.js";
import { einsumLabels } from "../ops/matmul.js";
import { cast } from "../ops/elementwise.js";
import { broadcastTo, reshape, transpose } from "../ops/movement.js";
import { quantizedWeightGmm, type QuantizedWeight } from "../ops/quantized-weight.js";

/** lhs [E,…,k] (capacity) → [E,…,n]: every expert's rows one group. */
function perExpertRows(lhs: Tensor, w: QuantizedWeight, lhsBits: number | undefined): Tensor {
  const [E, k, n] = w.shape;
  const mid = lhs.shape.slice(1, -1);
  const rows = mid.reduce((a, d) => a * d, 1);
  const out = quantizedWeightGmm(reshape(lhs, [E * rows, k]), w, full([E], rows, "int32"), lhsBits);
  return reshape(out, [E, ...mid, n]);
}

/** lhs [B,S,k] · w [1,k,n] held quantized (a shared MLP kernel): one group of all tokens → [B,S,n] in lhs's dtype. */
export function servedDense(lhs: Tensor, w: QuantizedWeight, lhsBits: number | undefined): Tensor {
  const [B, S, k] = lhs.shape as [number, number, number];
  if (w.shape[0] !== 1 || w.shape[1] !== k) throw new ShapeError(`[served dense] kernel [${w.shape.join(",")}] for input [${B},${S},${k}]`);
  const out = quantizedWeightGmm(reshape(lhs, [B * S, k]), w, full([1], B * S, "int32"), lhsBits);
  return cast(reshape(out, [B, S, w.shape[2]]), lhs.dtype);
}

/**
 * einsum(spec, lhs, w) for the dense path's specs with the expert weight `w` held quantized: "BSM,EMH->BSEH",
 * "BSEH,EHM->BSEM" (dropless) and the capacity forms whose lhs starts with E ("EBCM,EMH->EBCH", "EBNCH,EHM->EBNCM").
 */
export function servedExpertEinsum(spec: string, lhs: Tensor, w: QuantizedWeight, lhsBits: number | undefined): Tensor {
  const { ia, io } = einsumLabels(spec);
  const E = w.shape[0];
  if (ia[0] === "E") return perExpertRows(lhs, w, lhsBits);
  if (ia.join("") === "BSM" && io.join("") === "BSEH") {
    const [B, S, M] = lhs.shape as [number, number, number];
    const out = perExpertRows(broadcastTo(reshape(lhs, [1, B, S, M]), [E, B, S, M]), w, lhsBits);
    return transpose(out, [1, 2, 0, 3]);
  }
  if (ia.join("") === "BSEH" && io.join("") === "BSEM")
    return transpose(perExpertRows(transpose(lhs, [2, 0, 1, 3]), w, lhsBits), [1, 2, 0, 3]);
  throw new ShapeError(`[served einsum] "${spec}" is not one of the dense expert einsums`);
}
