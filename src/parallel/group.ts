import { MoeError } from "../core/errors.js";
import { noGrad } from "../autodiff/graph.js";
import { add } from "../ops/elementwise.js";
import { sliceAxis } from "../ops/movement.js";
import { zeros, type Tensor } from "../core/tensor.js";

/**
 * A communication group of `size` ranks (MLX-style). Calls are collective: every rank makes the same calls in
 * the same order. Tensors received carry no gradient (see collectives.ts for that). Sums add the ranks'
 * tensors in rank order, so every rank (and every implementation) gets the same bits.
 */
export interface Group {
  readonly rank: number;
  readonly size: number;
  /** Every rank's `x`, in rank order. */
  allGather(x: Tensor): Promise<Tensor[]>;
  /** `xs[j]` goes to rank j; returns what each rank sent to this one, in rank order. */
  allToAll(xs: readonly Tensor[]): Promise<Tensor[]>;
  /** Σ over ranks of `x` (all-reduce, psum). */
  allReduce(x: Tensor): Promise<Tensor>;
  /** Σ over ranks of slice `rank` of `size` equal slices of axis 0 (reduce-scatter, psum_scatter tiled). */
  reduceScatter(x: Tensor): Promise<Tensor>;
  /** Returns once every rank has called it. */
  barrier(): Promise<void>;
  /**
   * Optional: the ranks `members` (this one among them, in that order) as a group of their own, for an
   * implementation with native sub-communicators (MPI_Comm_split). Every rank asks at the same point, each for
   * the members of its own sub-group. Without it, a Mesh runs a sub-group's collectives as collectives of this one.
   */
  subGroup?(members: readonly number[]): Group;
}

/**
 * Buffers a group allocated for what a collective received and handed out only as that call's results: a caller may
 * take their parts as one array (MpiGroup's allToAll receives every peer's part back to back into one of these).
 */
export const receiveBuffers = new WeakSet<ArrayBufferLike>();

/** Sum in rank order, no gradient. */
function sumInOrder(parts: readonly Tensor[]): Tensor {
  return noGrad(() => parts.reduce((a, b) => add(a, b)));
}

/** `x`'s axis 0 cut into `n` equal slices (`op` names the caller in the error). */
export function equalSlices(x: Tensor, n: number, op: string): Tensor[] {
  const rows = x.shape[0]!;
  if (rows % n !== 0) throw new MoeError(`[${op}] axis 0 (${rows}) not divisible by group size ${n}`);
  const m = rows / n;
  return noGrad(() => Array.from({ length: n }, (_, j) => sliceAxis(x, 0, j * m, (j + 1) * m)));
}

/**
 * The reductions derived from allGather and allToAll (an implementation with native reductions, such as MPI's,
 * overrides them and must keep the rank order of the sum).
 */
export abstract class GroupBase implements Group {
  abstract readonly rank: number;
  abstract readonly size: number;
  abstract allGather(x: Tensor): Promise<Tensor[]>;
  abstract allToAll(xs: readonly Tensor[]): Promise<Tensor[]>;

  async allReduce(x: Tensor): Promise<Tensor> {
    return sumInOrder(await this.allGather(x));
  }

  async reduceScatter(x: Tensor): Promise<Tensor> {
    return sumInOrder(await this.allToAll(equalSlices(x, this.size, "reduce_scatter")));
  }

  async barrier(): Promise<void> {
    await this.allGather(zeros([0]));
  }
}
