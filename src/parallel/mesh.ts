// A device mesh over a Group (MaxText's mesh axes, the ones the MoE layer uses): rank → coordinates, and one
// sub-group per axis for the collectives along it.
import { MoeError } from "../core/errors.js";
import { didYouMean } from "../core/suggest.js";
import { zeros, type Tensor } from "../core/tensor.js";
import { GroupBase, type CollectiveOp, type Group } from "./group.js";

/** Mesh axes, outermost first (MaxText's order): a rank's index is row-major over them, `expert` fastest. */
export const MESH_AXES = ["data", "fsdp", "tensor", "tensor_transpose", "expert"] as const;
export type MeshAxis = (typeof MESH_AXES)[number];
export type MeshShape = Readonly<Record<MeshAxis, number>>;

const EMPTY = (): Tensor => zeros([0]);

/**
 * The ranks of `parent` listed in `members` (this rank among them), as a Group. Each collective is one collective
 * of the parent: every parent rank calls it at the same point, each on its own sub-group of the same axis (as an
 * SPMD program over a mesh does). A one-rank sub-group does not communicate. Like every Group, it returns
 * tensors without a gradient node (collectives.ts attaches those).
 */
class SubGroup extends GroupBase {
  readonly rank: number;
  readonly size: number;

  constructor(
    private readonly parent: Group,
    private readonly members: readonly number[],
  ) {
    super();
    this.rank = members.indexOf(parent.rank);
    this.size = members.length;
  }

  async gather(x: Tensor, op: CollectiveOp): Promise<Tensor[]> {
    return this.exchange(new Array<Tensor>(this.size).fill(x), op);
  }

  async exchange(xs: readonly Tensor[], op: CollectiveOp): Promise<Tensor[]> {
    if (this.size === 1) return [xs[0]!.sameStorage()];
    const send = Array.from({ length: this.parent.size }, EMPTY);
    this.members.forEach((m, k) => (send[m] = xs[k]!));
    // the parent's exchange under this collective's name, where it has one (a Group of the caller's otherwise)
    const got = this.parent instanceof GroupBase ? await this.parent.exchange(send, op) : await this.parent.allToAll(send);
    return this.members.map((m) => got[m]!);
  }
}

/**
 * `group`'s ranks arranged on the axes of `shape` (missing axes have size 1; the sizes multiply to group.size).
 *
 * @example
 * const mesh = new Mesh(group, { expert: 2, tensor: 2 }); // 4 ranks
 * await mesh.axis("tensor").allReduce(x); // sums over the 2 ranks with this rank's expert coordinate
 */
export class Mesh {
  readonly shape: MeshShape;
  /** this rank's coordinate on each axis */
  readonly coords: MeshShape;
  readonly #axes = new Map<MeshAxis, Group>();

  constructor(
    readonly group: Group,
    shape: Partial<MeshShape> & Partial<Record<OtherMeshAxis, 1>>,
  ) {
    for (const a of Object.keys(shape)) checkShapeAxis(a, (shape as Record<string, unknown>)[a]);
    const full = Object.fromEntries(MESH_AXES.map((a) => [a, shape[a] ?? 1])) as Record<MeshAxis, number>;
    for (const a of MESH_AXES) {
      if (!Number.isInteger(full[a]) || full[a] < 1) throw new MoeError(`[mesh] axis ${a} must be a positive integer, got ${full[a]}`);
    }
    const n = MESH_AXES.reduce((p, a) => p * full[a], 1);
    if (n !== group.size) throw new MoeError(`[mesh] axis sizes ${describe(full)} multiply to ${n}, the group has ${group.size} ranks`);
    this.shape = full;
    this.coords = coordsOf(group.rank, full);
  }

  /** Ranks that differ from this one only on `axis`, ordered by their coordinate on it. */
  axis(axis: MeshAxis): Group {
    checkAxis(axis);
    let g = this.#axes.get(axis);
    if (g === undefined) {
      const members = Array.from({ length: this.shape[axis] }, (_, i) => rankOf({ ...this.coords, [axis]: i }, this.shape));
      if (members.length === this.group.size) g = this.group;
      else if (members.length > 1 && this.group.subGroup !== undefined) g = this.group.subGroup(members);
      else g = new SubGroup(this.group, members);
      this.#axes.set(axis, g);
    }
    return g;
  }

  /** This rank's block and the block count when a dimension is split over `axes` (first axis major). */
  block(axes: readonly MeshAxis[]): { index: number; count: number } {
    axes.forEach(checkAxis);
    return axes.reduce((b, a) => ({ index: b.index * this.shape[a] + this.coords[a], count: b.count * this.shape[a] }), {
      index: 0,
      count: 1,
    });
  }

  toString(): string {
    return describe(this.shape);
  }
}

// MaxText's mesh axes that the MoE layer does not shard over: a mesh copied from a MaxText config may list them at size 1.
const OTHER_MAXTEXT_AXES: readonly string[] = [
  "stage",
  "fsdp_transpose",
  "sequence",
  "context",
  "context_autoregressive",
  "tensor_sequence",
  "autoregressive",
] satisfies readonly OtherMeshAxis[];
/** MaxText's mesh axes that a Mesh takes at size 1 only (so that a MaxText mesh's full list of axes can be given). */
export type OtherMeshAxis =
  "stage" | "fsdp_transpose" | "sequence" | "context" | "context_autoregressive" | "tensor_sequence" | "autoregressive";

/** A JavaScript caller's axis name (an `experts` axis read as size 1 everywhere), refused with the closest one. */
function checkAxis(a: string): void {
  if (!(MESH_AXES as readonly string[]).includes(a))
    throw new MoeError(`[mesh] unknown axis ${a}${didYouMean(a, MESH_AXES)} (the axes are ${MESH_AXES.join(", ")})`);
}

/** An axis of a mesh's shape: also MaxText's other axes, at size 1 (or undefined) only. */
function checkShapeAxis(a: string, size: unknown): void {
  if (!OTHER_MAXTEXT_AXES.includes(a)) return checkAxis(a);
  if (size !== 1 && size !== undefined)
    throw new MoeError(
      `[mesh] axis ${a}=${String(size)}: a MaxText axis the MoE layer does not shard over (give it size 1; the axes are ${MESH_AXES.join(", ")})`,
    );
}

function describe(s: MeshShape): string {
  return MESH_AXES.map((a) => `${a}=${s[a]}`).join(" ");
}

function coordsOf(rank: number, shape: MeshShape): MeshShape {
  const c = {} as Record<MeshAxis, number>;
  let r = rank;
  for (const a of [...MESH_AXES].reverse()) {
    c[a] = r % shape[a];
    r = Math.floor(r / shape[a]);
  }
  return c;
}

function rankOf(coords: MeshShape, shape: MeshShape): number {
  return MESH_AXES.reduce((r, a) => r * shape[a] + coords[a], 0);
}
