import { DTypeError } from "../core/errors.js";
import type { Tensor } from "../core/tensor.js";
import { Prim } from "../prims/prims.js";
import { bind1 } from "../autodiff/bind.js";

/**
 * Grouped matmul (Megablox gmm): rows [off_g, off_g + groupSizes[g]) of `lhs` [m,k] times `rhs[g]`
 * [k,n] (or rhs[g]^T when transposeRhs, rhs [G,n,k]). Rows past sum(groupSizes) are 0.
 */
export function gmm(lhs: Tensor, rhs: Tensor, groupSizes: Tensor, transposeRhs = false): Tensor {
  if (groupSizes.dtype !== "int32") throw new DTypeError(`[gmm] groupSizes must be int32, got ${groupSizes.dtype}`);
  return bind1(Prim.Gmm, [lhs, rhs, groupSizes], { transposeRhs });
}

/** Transposed grouped matmul: out[g] = lhs_g^T @ rhs_g, lhs [m,k], rhs [m,n] -> [G,k,n]. */
export function tgmm(lhs: Tensor, rhs: Tensor, groupSizes: Tensor): Tensor {
  if (groupSizes.dtype !== "int32") throw new DTypeError(`[tgmm] groupSizes must be int32, got ${groupSizes.dtype}`);
  return bind1(Prim.Tgmm, [lhs, rhs, groupSizes], {});
}
