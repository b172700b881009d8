// Tensor, tensor-transpose and FSDP parallelism of the routed experts over a Mesh (with expert-parallel.ts, the
// only MoE files that communicate). Per rank, as the seed's shard_map body sees it:
//  - tensor (TP): wi_0/wi_1 [e,D,H/tp], wo [e,H/tp,D]; each rank runs the FFN on its H slice, the partial wo
//    outputs are psum_scattered over the embedding dim, so the layer's output is [B,S,D/tp] per rank;
//  - tensor_transpose (TT): x and the weights' embedding dim sliced, wi [e,D/tt,H], wo [e,H,D/tt]; the partial
//    wi outputs are psummed (all-reduce), the output is [B,S,D/tt];
//  - fsdp: the expert weights are stored sharded over fsdp on the embedding dim and all-gathered before use (the
//    gather's VJP reduce-scatters their gradients); the batch is sharded over data × fsdp × expert.
// Legend: B batch, S sequence, D model dim, H expert hidden, E experts, e local experts, R routed rows.
import { ConfigError, ShapeError } from "../core/errors.js";
import { fmt } from "../core/shape.js";
import { zeros, type Tensor } from "../core/tensor.js";
import { add, cast, mul } from "../ops/elementwise.js";
import { argsort, take } from "../ops/indexing.js";
import { sliceAxis } from "../ops/movement.js";
import { allGatherAxis, psum, psumScatterAxis } from "../parallel/collectives.js";
import type { Group } from "../parallel/group.js";
import { Mesh, type MeshAxis } from "../parallel/mesh.js";
import type { MoeConfig } from "./config.js";
import {
  denseMatmul,
  expertDown,
  expertFfn,
  expertUp,
  hasFloatKernels,
  sparseMatmul,
  sparseResult,
  type DenseResult,
  type AnyExpertWeights,
  type ExpertWeight,
  type ExpertWeights,
  type SparseResult,
} from "./experts.js";
import { gatherSorted, route, sortActivations, unpermute } from "./permute.js";
import type { RoutingRng } from "./routing.js";
import type { Key } from "../nn/random.js";
import { clamp as clampIds } from "./ids.js";

/**
 * The FFN of grouped rows on one rank: [R, D_in] → [R, D_out] (the tensor axes decide the widths). With `order_R`,
 * grouped row r is x_RD[order_R[r]] and the output is in x_RD's row order (expert-parallel.ts hands over the received
 * rows so, unsorted).
 */
export type RowFfn = (x_RD: Tensor, groupSizes_e: Tensor, expertOfRow_R: Tensor, order_R?: Tensor) => Promise<Tensor>;

/** The sub-groups one MoE layer communicates over. A bare Group is a mesh with only an expert axis. */
export interface MoeAxes {
  mesh: Mesh;
  expert: Group;
  tensor: Group;
  tensorTranspose: Group;
  fsdp: Group;
}

export function moeAxes(g: Group | Mesh): MoeAxes {
  const mesh = g instanceof Mesh ? g : new Mesh(g, { expert: g.size });
  return {
    mesh,
    expert: mesh.axis("expert"),
    tensor: mesh.axis("tensor"),
    tensorTranspose: mesh.axis("tensor_transpose"),
    fsdp: mesh.axis("fsdp"),
  };
}

/**
 * The mesh MaxText builds from the config's ici_* keys on `group`'s ranks: ici_expert_parallelism,
 * ici_tensor_parallelism and ici_tensor_transpose_parallelism as given, the remaining ranks on fsdp (MaxText's
 * default ici_fsdp_parallelism=-1).
 */
export function meshFromConfig(group: Group, cfg: MoeConfig): Mesh {
  const [ep, tp, tt] = [cfg.iciExpertParallelism, cfg.iciTensorParallelism, cfg.iciTensorTransposeParallelism];
  if (group.size % (ep * tp * tt) !== 0) {
    throw new ConfigError(
      "ici_expert_parallelism",
      ep,
      `times ici_tensor_parallelism (${tp}) and ici_tensor_transpose_parallelism (${tt}) must divide the ${group.size} ranks (the rest go to fsdp)`,
    );
  }
  return new Mesh(group, { fsdp: group.size / (ep * tp * tt), tensor: tp, tensor_transpose: tt, expert: ep });
}

/**
 * The seed's size rules for a mesh (the errors name the MaxText key of the axis). D: the layer's embedding dim (its
 * input's), H: the experts' full hidden dim.
 */
export function checkParallelSizes(cfg: MoeConfig, mesh: Mesh, D: number, H?: number): void {
  const { expert: ep, tensor: tp, tensor_transpose: tt, fsdp } = mesh.shape;
  if (cfg.numExperts % ep !== 0) throw new ConfigError("ici_expert_parallelism", ep, `must divide num_experts (${cfg.numExperts})`);
  if (tp > 1 && tt > 1) {
    throw new ConfigError(
      "ici_tensor_transpose_parallelism",
      tt,
      `cannot combine with ici_tensor_parallelism=${tp}: the seed shards the input's embedding dim over both axes but wi_0/wi_1's over tensor_transpose only`,
    );
  }
  if (tt > 1 && ep > 1) {
    throw new ConfigError(
      "ici_tensor_transpose_parallelism",
      tt,
      `cannot combine with expert parallelism (${ep}): the seed's all-to-all buffers are emb_dim wide but its rows emb_dim/tensor_transpose`,
    );
  }
  if (H !== undefined && H % tp !== 0) throw new ConfigError("ici_tensor_parallelism", tp, `must divide the experts' hidden dim (${H})`);
  if (D % tp !== 0) {
    throw new ConfigError("ici_tensor_parallelism", tp, `must divide the embedding dim (${D}): wo's output is psum_scattered over it`);
  }
  if (D % tt !== 0) throw new ConfigError("ici_tensor_transpose_parallelism", tt, `must divide the embedding dim (${D})`);
  if (D % (tt * fsdp) !== 0) {
    throw new ConfigError(
      "ici_fsdp_parallelism",
      fsdp,
      `times ici_tensor_transpose_parallelism (${tt}) must divide the embedding dim (${D}): the expert weights are sharded over both on it`,
    );
  }
}

/** The mesh axes the layer's batch is sharded over (first major), when it has more than one row. */
export const BATCH_AXES: readonly MeshAxis[] = ["data", "fsdp", "expert"];
/** The mesh axes the layer's output is sharded over on the embedding dim (at most one of them > 1). */
export const OUTPUT_EMBED_AXES: readonly MeshAxis[] = ["tensor", "tensor_transpose"];

/**
 * Checks that `w` is this rank's shard on `mesh` as far as the config tells (experts, the embedding dims, wi and wo
 * agreeing on H, and H not the config's full expert width under tensor parallelism): full weights handed to a
 * sharded mesh would be summed several times over.
 */
export function checkShardShapes(cfg: MoeConfig, mesh: Mesh, D: number, w: AnyExpertWeights): void {
  const { expert: ep, tensor: tp, tensor_transpose: tt, fsdp } = mesh.shape;
  const [e, d, dOut] = [cfg.numExperts / ep, D / (tt * fsdp), D / (tp * tt)];
  const h = w.wi0.shape[2]!;
  const fullH = cfg.paddedBaseMoeMlpDim ?? cfg.moeMlpDim;
  if (tp > 1 && h === fullH) {
    throw new ShapeError(
      `[mesh] wi_0 is ${fmt(w.wi0.shape)}, the full expert width ${fullH}; this rank's shard on ${mesh.toString()} has ${fullH / tp} (meshShardWeights)`,
    );
  }
  const want: [string, ExpertWeight | undefined, number[]][] = [
    ["wi_0", w.wi0, [e, d, h]],
    ["wi_1", w.wi1, [e, d, h]],
    ["wo", w.wo, [e, h, d]],
    ["wo_bias", w.woBias, [e, dOut]],
  ];
  for (const [name, t, shape] of want) {
    if (t !== undefined && t.shape.some((n, i) => n !== shape[i])) {
      throw new ShapeError(
        `[mesh] ${name} is ${fmt(t.shape)}, this rank's shard on ${mesh.toString()} is ${fmt(shape)} (meshShardWeights)`,
      );
    }
  }
}

/** Slice `index` of `count` equal slices of `axis`. */
function block(t: Tensor, axis: number, b: { index: number; count: number }): Tensor {
  const n = t.shape[axis]! / b.count;
  return sliceAxis(t, axis, b.index * n, (b.index + 1) * n);
}

/**
 * This rank's shard of full expert weights on `mesh`: experts over expert; H over tensor; the embedding dim of
 * wi_0/wi_1/wo over tensor_transpose then fsdp (so the fsdp all-gather yields the tensor_transpose slice); wo_bias's
 * over tensor and tensor_transpose (the output's sharding). Checks the size rules first.
 */
export function meshShardWeights<W extends ExpertWeights & { perExpertScale?: Tensor | undefined }>(cfg: MoeConfig, w: W, mesh: Mesh): W {
  if (!hasFloatKernels(w))
    throw new ShapeError(
      "[meshShardWeights] served (quantized) expert weights are cut over an expert axis only: shardWeights(w, rank, size)",
    );
  checkParallelSizes(cfg, mesh, w.wi0.shape[1]!, w.wi0.shape[2]);
  const exp = mesh.block(["expert"]);
  const h = mesh.block(["tensor"]);
  const d = mesh.block(["tensor_transpose", "fsdp"]);
  const out = mesh.block(OUTPUT_EMBED_AXES);
  const opt = (t: Tensor | undefined, f: (t: Tensor) => Tensor): Tensor | undefined => (t === undefined ? undefined : f(t));
  return {
    ...w,
    wi0: block(block(block(w.wi0, 0, exp), 1, d), 2, h),
    wi1: block(block(block(w.wi1, 0, exp), 1, d), 2, h),
    wo: block(block(block(w.wo, 0, exp), 1, h), 2, d),
    wi0Bias: opt(w.wi0Bias, (t) => block(block(t, 0, exp), 1, h)),
    wi1Bias: opt(w.wi1Bias, (t) => block(block(t, 0, exp), 1, h)),
    woBias: opt(w.woBias, (t) => block(block(t, 0, exp), 1, out)),
    perExpertScale: opt(w.perExpertScale, (t) => block(t, 0, exp)),
  };
}

/** The FSDP all-gather of the expert weights on their embedding dim (wi_0/wi_1 axis 1, wo axis 2). */
export async function gatherFsdp(axes: MoeAxes, w: AnyExpertWeights): Promise<AnyExpertWeights> {
  if (axes.fsdp.size === 1) return w;
  if (!hasFloatKernels(w))
    throw new ConfigError(
      "ici_fsdp_parallelism",
      axes.fsdp.size,
      "needs float expert weights (served quantized weights are not FSDP-sharded)",
    );
  return {
    ...w,
    wi0: await allGatherAxis(axes.fsdp, w.wi0, 1),
    wi1: await allGatherAxis(axes.fsdp, w.wi1, 1),
    wo: await allGatherAxis(axes.fsdp, w.wo, 2),
  };
}

/** This rank's columns of the layer input: its tensor_transpose slice of the embedding dim (all of it otherwise). */
function tensorTransposeSlice(axes: MoeAxes, x_BSD: Tensor): Tensor {
  const tt = axes.tensorTranspose;
  return tt.size === 1 ? x_BSD : block(x_BSD, 2, { index: tt.rank, count: tt.size });
}

/** The rows' FFN for the mesh's tensor axes (local expertFfn when both have size 1). */
export function meshFfn(cfg: MoeConfig, axes: MoeAxes, w: AnyExpertWeights): RowFfn {
  if (axes.tensorTranspose.size > 1) return sorting(cfg, (x, gs, ids) => tensorTransposeFfn(cfg, axes.tensorTranspose, x, gs, ids, w));
  if (axes.tensor.size > 1) return sorting(cfg, (x, gs, ids) => tensorParallelFfn(cfg, axes.tensor, x, gs, ids, w));
  return (x, gs, ids, order) => Promise.resolve(expertFfn(cfg, x, gs, ids, w, order));
}

/** `f` over rows already grouped, given an order: the rows sorted before and unsorted after. */
function sorting(cfg: MoeConfig, f: RowFfn): RowFfn {
  return async (x, gs, ids, order) => {
    if (order === undefined) return f(x, gs, ids);
    const out = await f(sortActivations(x, order, cfg.useCustomSortVjp), gs, ids);
    return sortActivations(out, argsort(order), cfg.useCustomSortVjp);
  };
}

/**
 * TP: the fused FFN on this rank's H slice with a zero wo bias, the partial outputs psum_scattered over the
 * embedding dim, then this rank's slice of the wo bias (the seed adds it after the reduction).
 */
async function tensorParallelFfn(
  cfg: MoeConfig,
  tensor: Group,
  x_RD: Tensor,
  gs: Tensor,
  ids: Tensor,
  w: AnyExpertWeights,
): Promise<Tensor> {
  const bias = cfg.mlpBias ? w.woBias! : undefined;
  const noWoBias = bias === undefined ? w : { ...w, woBias: zeros([w.wo.shape[0]!, w.wo.shape[2]!], bias.dtype) };
  const out_RD = await psumScatterAxis(tensor, expertFfn(cfg, x_RD, gs, ids, noWoBias), 1);
  return bias === undefined ? out_RD : add(out_RD, take(cast(bias, cfg.dtype), clampIds(ids, bias.shape[0]!), 0));
}

/** TT: the wi GMMs contract this rank's slice of the embedding dim; their partial outputs are psummed. */
async function tensorTransposeFfn(cfg: MoeConfig, tt: Group, x_RD: Tensor, gs: Tensor, ids: Tensor, w: AnyExpertWeights): Promise<Tensor> {
  const [p0, p1] = expertUp(cfg, x_RD, gs, w);
  return expertDown(cfg, await psum(tt, p0), await psum(tt, p1), gs, ids, w);
}

/**
 * The experts of one rank with an expert axis of size 1. sparse_matmul: route, the rows' FFN over the tensor
 * axes, combine. dense_matmul (the seed shards it by annotation, with no explicit collectives): with tensor
 * parallelism each rank computes its H slice and the partial outputs are psum_scattered over the embedding dim;
 * the wo bias (gathered to full width) enters once, on tensor rank 0. `inputs_BSD` has the full embedding dim.
 */
export async function matmulMesh(
  cfg: MoeConfig,
  axes: MoeAxes,
  inputs_BSD: Tensor,
  gateLogits_BSE: Tensor,
  preBiasLogits_BSE: Tensor | undefined,
  w: AnyExpertWeights,
  rng?: RoutingRng,
  quantKey?: Key,
): Promise<SparseResult | DenseResult> {
  const [tensor, tt] = [axes.tensor, axes.tensorTranspose.size];
  if (axes.expert.size > 1 && cfg.sparseMatmul)
    throw new ConfigError("ici_expert_parallelism", axes.expert.size, "expert parallelism runs in expert-parallel.ts");
  if (tensor.size === 1 && tt === 1) {
    return cfg.sparseMatmul
      ? sparseMatmul(cfg, inputs_BSD, gateLogits_BSE, preBiasLogits_BSE, w, rng)
      : denseMatmul(cfg, inputs_BSD, gateLogits_BSE, preBiasLogits_BSE, w, rng, quantKey);
  }
  if (cfg.sparseMatmul) {
    const [B, S] = inputs_BSD.shape as [number, number];
    const r = route(cfg, tensorTransposeSlice(axes, inputs_BSD), gateLogits_BSE, preBiasLogits_BSE, { rng });
    const out_RD = await meshFfn(cfg, axes, w)(gatherSorted(cfg, r.inputs_TD, r.order_R), r.groupSize_E, r.sortedExperts_R);
    return sparseResult(r, unpermute(cfg, out_RD, r.order_R, r.weights_BSK, B, S));
  }
  if (tt > 1) {
    throw new ConfigError("ici_tensor_transpose_parallelism", tt, "the seed's tensor_transpose collectives are in the sparse path only");
  }
  let woBias: Tensor | undefined;
  // every rank gathers (the gather's VJP is collective); rank 0's copy is the one that counts
  if (cfg.mlpBias) woBias = mul(await allGatherAxis(tensor, w.woBias!, 1), tensor.rank === 0 ? 1 : 0);
  const r = denseMatmul(cfg, inputs_BSD, gateLogits_BSE, preBiasLogits_BSE, { ...w, woBias }, rng, quantKey);
  return { ...r, output: await psumScatterAxis(tensor, r.output, 2) };
}
