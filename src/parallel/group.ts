import type { Tensor } from "../core/tensor.js";

/**
 * A communication group of `size` ranks (MLX-style). Two primitives carry everything moekit needs;
 * a multi-process implementation provides the same two. Calls are collective: every rank makes the
 * same calls in the same order. Tensors received carry no gradient (see collectives.ts for that).
 */
export interface Group {
  readonly rank: number;
  readonly size: number;
  /** Every rank's `x`, in rank order. */
  allGather(x: Tensor): Promise<Tensor[]>;
  /** `xs[j]` goes to rank j; returns what each rank sent to this one, in rank order. */
  allToAll(xs: readonly Tensor[]): Promise<Tensor[]>;
}
