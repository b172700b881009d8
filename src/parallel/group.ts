import { MoeError } from "../core/errors.js";
import { shapesEqual } from "../core/shape.js";
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

/**
 * Sum in rank order, no gradient. The parts must agree in shape and dtype: a sum would broadcast [1] against [4],
 * or widen float32 with float64, silently (`op` names the collective).
 */
function sumInOrder(parts: readonly Tensor[], op: CollectiveOp): Tensor {
  const first = parts[0]!;
  const bad = parts.findIndex((p) => p.dtype !== first.dtype || !shapesEqual(p.shape, first.shape));
  if (bad > 0)
    throw new MoeError(
      `[${op}] rank 0 gave ${first.dtype}[${first.shape.join(",")}], rank ${bad} gave ${parts[bad]!.dtype}[${parts[bad]!.shape.join(",")}]: a sum over ranks needs the same shape and dtype on every rank`,
    );
  return noGrad(() => parts.reduce((a, b) => add(a, b)));
}

/** `x`'s axis 0 cut into `n` equal slices (`op` names the caller in the error). */
export function equalSlices(x: Tensor, n: number, op: string): Tensor[] {
  const rows = x.shape[0]!;
  if (rows % n !== 0) throw new MoeError(`[${op}] axis 0 (${rows}) not divisible by group size ${n}`);
  const m = rows / n;
  return noGrad(() => Array.from({ length: n }, (_, j) => sliceAxis(x, 0, j * m, (j + 1) * m)));
}

/** The collective a rank called: what the ranks compare at each call, so that different calls are a mismatch. */
export type CollectiveOp = "allGather" | "allToAll" | "allReduce" | "reduceScatter" | "barrier";

/**
 * Every collective from two transports, each told the collective it serves (the reductions are derived from them: an
 * implementation with native reductions overrides them and must keep the rank order of the sum).
 */
export abstract class GroupBase implements Group {
  abstract readonly rank: number;
  abstract readonly size: number;
  /** Every rank's `x`, in rank order, for collective `op`. */
  abstract gather(x: Tensor, op: CollectiveOp): Promise<Tensor[]>;
  /** `xs[j]` to rank j (xs.length checked), what each rank sent to this one back, for collective `op`. */
  abstract exchange(xs: readonly Tensor[], op: CollectiveOp): Promise<Tensor[]>;

  allGather(x: Tensor): Promise<Tensor[]> {
    return this.gather(x, "allGather");
  }

  async allToAll(xs: readonly Tensor[]): Promise<Tensor[]> {
    if (xs.length !== this.size) throw new MoeError(`[group] allToAll needs ${this.size} tensors, got ${xs.length}`);
    return this.exchange(xs, "allToAll");
  }

  async allReduce(x: Tensor): Promise<Tensor> {
    return sumInOrder(await this.gather(x, "allReduce"), "allReduce");
  }

  async reduceScatter(x: Tensor): Promise<Tensor> {
    return sumInOrder(await this.exchange(equalSlices(x, this.size, "reduce_scatter"), "reduceScatter"), "reduceScatter");
  }

  async barrier(): Promise<void> {
    await this.gather(zeros([0]), "barrier");
  }
}
