import type { Tensor } from "../core/tensor.js";
import { maximum, minimum } from "../ops/elementwise.js";

/** Expert ids clamped to [0, n) (JAX's clamping gather for padding rows). */
export function clamp(ids: Tensor, n: number): Tensor {
  return minimum(maximum(ids, 0), n - 1);
}
