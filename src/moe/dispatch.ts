// Dense-path dispatch: capacity masks (token dropping) and the routing-weight scatter.
// Legend: B batch, S sequence, N context partitions, E experts, K experts per token, C capacity.
import type { Tensor } from "../core/tensor.js";
import { cast, equal, lessEqual, mul, sub } from "../ops/elementwise.js";
import { cumsum, oneHot } from "../ops/indexing.js";
import { reshape, sliceAxis } from "../ops/movement.js";
import { sum } from "../ops/reduce.js";
import type { MoeConfig } from "./config.js";

/** Capacity per group of `tokensPerGroup` routed choices: int(max(ceil(t/E)·cf, cf)) (truncation). */
export function expertCapacity(tokensPerGroup: number, numExperts: number, capacityFactor: number): number {
  return Math.trunc(Math.max(Math.ceil(tokensPerGroup / numExperts) * capacityFactor, capacityFactor));
}

/** get_context_partition_and_sub_seq: cp = context-autoregressive size if it divides S, else 1. */
export function getContextPartitionAndSubSeq(cfg: MoeConfig, seqLen: number): [number, number] {
  let cp = cfg.iciContextAutoregressiveParallelism;
  if (seqLen % cp !== 0) cp = 1;
  return [cp, seqLen / cp];
}

/**
 * reshape_and_update_weights: [B,S,K] weights scattered into zeros [B,S,E] at the top-k ids
 * (`.at[].set`: for a repeated id the last slot wins).
 */
export function reshapeAndUpdateWeights(cfg: MoeConfig, weights_BSK: Tensor, indices_BSK: Tensor): Tensor {
  const mask_BSKE = oneHot(indices_BSK, cfg.numExperts, "int32");
  // keep a slot only if no later slot of the token picked the same expert
  const later_BSKE = sub(cumsum(mask_BSKE, 2, true), mask_BSKE);
  const last_BSKE = mul(mask_BSKE, cast(lessEqual(later_BSKE, 0), "int32"));
  const w_BSKE = mul(cast(last_BSKE, cfg.dtype), reshape(cast(weights_BSK, cfg.dtype), [...weights_BSK.shape, 1]));
  return sum(w_BSKE, 2);
}

export interface CapacityMasks {
  /** [G,T,E,C] (G groups of T tokens) — 1 where the choice is dispatched to slot c */
  dispatch: Tensor;
  /** [G,T,E,C] combine weights */
  combine: Tensor;
  capacity: number;
  /** [G,T,K] int32: 1 = choice kept, 0 = dropped */
  kept: Tensor;
}

/** Mask computation shared by generate_masks (G = batch) and generate_masks_subgroup (G = batch·cp). */
export function capacityMasks(cfg: MoeConfig, topK_GTK: Tensor, probs_GTE: Tensor): CapacityMasks {
  const [G, T, K] = topK_GTK.shape as [number, number, number];
  const E = cfg.numExperts;
  const C = expertCapacity(T * K, E, cfg.capacityFactor);
  const mask_GTKE = oneHot(topK_GTK, E, "int32");
  const fused_GRE = reshape(mask_GTKE, [G, T * K, E]);
  const count_GRE = cumsum(fused_GRE, 1);
  const count_GTKE = reshape(count_GRE, [G, T, K, E]);
  const trunc_GTKE = mul(mask_GTKE, lessEqual(count_GTKE, C));
  const combined_GTE = sum(trunc_GTKE, 2);
  const probs = mul(probs_GTE, combined_GTE);
  const pos_GTKE = reshape(mul(fused_GRE, count_GRE), [G, T, K, E]);
  const slot_GTE = mul(sum(pos_GTKE, 2), combined_GTE);
  const slotOneHot = oneHot(slot_GTE, C + 1, "int32");
  const combine = sliceAxis(mul(reshape(probs, [G, T, E, 1]), slotOneHot), 3, 1, C + 1);
  const dispatch = cast(sub(1, equal(combine, 0)), combine.dtype);
  return { dispatch, combine, capacity: C, kept: sum(trunc_GTKE, 3) };
}

/** generate_masks (training): per batch row. Returns [dispatchMask_BSEC, combineMask_BSEC]. */
export function generateMasks(cfg: MoeConfig, topKIndices_BSK: Tensor, softmaxProbs_BSE: Tensor): [Tensor, Tensor] {
  const m = capacityMasks(cfg, topKIndices_BSK, softmaxProbs_BSE);
  return [m.dispatch, m.combine];
}

/** Sub-group masks as [B·N, S/N, ...] groups plus the [B,N,S/N,E,C] views the seed returns. */
export function subgroupMasks(cfg: MoeConfig, topKIndices_BSK: Tensor, softmaxProbs_BSE: Tensor): CapacityMasks & { cp: number } {
  const [B, S, K] = topKIndices_BSK.shape as [number, number, number];
  const [cp, sub] = getContextPartitionAndSubSeq(cfg, S);
  const m = capacityMasks(cfg, reshape(topKIndices_BSK, [B * cp, sub, K]), reshape(softmaxProbs_BSE, [B * cp, sub, cfg.numExperts]));
  const view = (t: Tensor): Tensor => reshape(t, [B, cp, sub, cfg.numExperts, m.capacity]);
  return { dispatch: view(m.dispatch), combine: view(m.combine), capacity: m.capacity, kept: reshape(m.kept, [B, S, K]), cp };
}

/** generate_masks_subgroup (inference): capacity per sub-sequence. Returns [dispatch, combine] [B,N,S/N,E,C]. */
export function generateMasksSubgroup(cfg: MoeConfig, topKIndices_BSK: Tensor, softmaxProbs_BSE: Tensor): [Tensor, Tensor] {
  const m = subgroupMasks(cfg, topKIndices_BSK, softmaxProbs_BSE);
  return [m.dispatch, m.combine];
}
