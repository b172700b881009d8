// The dense path under expert parallelism. The seed's dense_matmul has no shard_map: the layer is sharded by
// annotation, the expert weights are all-gathered over the expert axis
// (maybe_all_gather_kernel_weight_in_expert_parallelism), and every value is the whole batch's. Here each rank
// gathers the batch and every expert's weights, runs the dense path on the whole batch and keeps its batch slice,
// so the losses, bias updates and capacity masks are the single-device ones on every rank.
import { ConfigError } from "../core/errors.js";
import { zeros, type Tensor } from "../core/tensor.js";
import { sliceAxis } from "../ops/movement.js";
import { allGather, allGatherAxis } from "../parallel/collectives.js";
import type { Group } from "../parallel/group.js";
import type { Key } from "../nn/random.js";
import type { MoeConfig } from "./config.js";
import { hasFloatKernels, type AnyExpertWeights, type DenseResult } from "./experts.js";
import type { EpPath, EpStats } from "./expert-parallel.js";
import type { RoutingRng } from "./routing.js";
import { matmulMesh, type MoeAxes } from "./tensor-parallel.js";

/** Every expert's weights on every rank; the gather's VJP reduce-scatters, so each rank gets its experts' gradients. */
async function gatherExperts(expert: Group, w: AnyExpertWeights): Promise<AnyExpertWeights> {
  if (!hasFloatKernels(w))
    throw new ConfigError(
      "sparse_matmul",
      false,
      "with expert parallelism needs float expert weights (served quantized weights stay sharded)",
    );
  const all = async (t: Tensor | undefined): Promise<Tensor | undefined> => (t === undefined ? undefined : allGatherAxis(expert, t, 0));
  return {
    wi0: await allGatherAxis(expert, w.wi0, 0),
    wi1: await allGatherAxis(expert, w.wi1, 0),
    wo: await allGatherAxis(expert, w.wo, 0),
    wi0Bias: await all(w.wi0Bias),
    wi1Bias: await all(w.wi1Bias),
    woBias: await all(w.woBias),
  };
}

/**
 * dense_matmul on one rank of the expert axis: x, the logits and an injected random draw are this rank's batch
 * slice (the whole batch on the batch_replicated path); the result's per-token tensors are this rank's slice again.
 */
export async function denseMatmulExpertParallel(
  cfg: MoeConfig,
  axes: MoeAxes,
  path: EpPath,
  inputs_BSD: Tensor,
  gateLogits_BSE: Tensor,
  preBiasLogits_BSE: Tensor | undefined,
  w: AnyExpertWeights,
  rng?: RoutingRng,
  quantKey?: Key,
): Promise<DenseResult & { ep: EpStats }> {
  const g = axes.expert;
  const sharded = path !== "batch_replicated";
  const all = async (t: Tensor): Promise<Tensor> => (sharded ? allGather(g, t) : t);
  const draw = rng !== undefined && "topKIndices" in rng ? { topKIndices: await all(rng.topKIndices) } : rng;
  const pre = preBiasLogits_BSE === undefined ? undefined : await all(preBiasLogits_BSE);
  const r = await matmulMesh(cfg, axes, await all(inputs_BSD), await all(gateLogits_BSE), pre, await gatherExperts(g, w), draw, quantKey);
  const b = inputs_BSD.shape[0]!;
  const mine = (t: Tensor): Tensor => (sharded ? sliceAxis(t, 0, g.rank * b, (g.rank + 1) * b) : t);
  return {
    ...r,
    output: mine(r.output),
    topKWeights_BSK: mine(r.topKWeights_BSK),
    topKIndices_BSK: mine(r.topKIndices_BSK),
    keptMask_BSK: r.keptMask_BSK === undefined ? undefined : mine(r.keptMask_BSK),
    ep: { path, localGroupSizes: zeros([0], "int32") },
  };
}
