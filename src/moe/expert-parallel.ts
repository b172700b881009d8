// Expert parallelism: the only MoE file that communicates. Rows move between ranks after permute
// and back before unpermute; the expert FFN itself is local.
// Legend: B batch (local), S sequence, D model dim, E experts, e local experts (E/N), N ranks, K top-k,
// R routed rows.
import { MoeError } from "../core/errors.js";
import type { Tensor } from "../core/tensor.js";
import { arange } from "../ops/indexing.js";
import { lessEqual, where } from "../ops/elementwise.js";
import { expandDims, reshape, sliceAxis, transpose } from "../ops/movement.js";
import { sum } from "../ops/reduce.js";
import { allGather, allGatherStack, psumScatter, raggedAllToAll, type RaggedParams } from "../parallel/collectives.js";
import type { Group } from "../parallel/group.js";
import type { MoeConfig } from "./config.js";
import { expertFfn, type AnyExpertWeights } from "./experts.js";
import { localPermute, localPermuteOrder, permute, unpermute } from "./permute.js";
import type { RoutingRng } from "./routing.js";
import type { SparseResult } from "./experts.js";
import type { RowFfn } from "./tensor-parallel.js";

/**
 * get_all_to_all_params (static): ragged all-to-all parameters for shard `shardId` from
 * allShardsGroupSizes (batch sharded: A[i,j] = rows shard i sends to expert shard j, [N,N];
 * replicated: per-shard totals [N]). Returns [inputOffsets, sendSizes, outputOffsets, recvSizes].
 */
export function getAllToAllParams(
  allShardsGroupSizes: Tensor,
  shardId: number,
  numExpertParallelism: number,
  isBatchSharded = true,
): [number[], number[], number[], number[]] {
  const N = numExpertParallelism;
  const a = Array.from(allShardsGroupSizes.data);
  if (isBatchSharded) {
    const at = (i: number, j: number): number => a[i * N + j]!;
    const send = Array.from({ length: N }, (_, j) => at(shardId, j));
    const inOff = send.map((_, j) => send.slice(0, j).reduce((x, y) => x + y, 0));
    const outOff = Array.from({ length: N }, (_, j) => Array.from({ length: shardId }, (_, i) => at(i, j)).reduce((x, y) => x + y, 0));
    const recv = Array.from({ length: N }, (_, i) => at(i, shardId));
    return [inOff, send, outOff, recv];
  }
  const off = a.slice(0, shardId).reduce((x, y) => x + y, 0);
  return [new Array<number>(N).fill(0), new Array<number>(N).fill(a[shardId]!), new Array<number>(N).fill(off), a];
}

/**
 * get_ragged_buffer_size (static): rows of the receive buffer. With ragged_buffer_factor > 0,
 * int(localBatch · factor) (can overflow); otherwise the worst case int(localBatch · min(N, E/K)).
 */
export function getRaggedBufferSize(
  localBatch: number,
  epDegree: number,
  globalExperts: number,
  topK: number,
  raggedBufferFactor: number,
): number {
  if (raggedBufferFactor > 0) return Math.trunc(localBatch * raggedBufferFactor);
  return Math.trunc(localBatch * Math.min(epDegree, globalExperts / topK));
}

export const EP_PATHS = ["batch_sharded", "batch_replicated", "ring_of_experts"] as const;
export type EpPath = (typeof EP_PATHS)[number];

export interface EpStats {
  path: EpPath;
  /** [N,N] rows sent from batch shard i to expert shard j (batch sharded) */
  allShardsGroupSizes?: Tensor;
  raggedBufferSize?: number;
  /** [e] rows per local expert on this rank */
  localGroupSizes: Tensor;
}

export interface EpResult extends SparseResult {
  ep: EpStats;
}

const params = (p: [number[], number[], number[], number[]]): RaggedParams => ({
  inputOffsets: p[0],
  sendSizes: p[1],
  outputOffsets: p[2],
  recvSizes: p[3],
});

function maskRows(x: Tensor, keep: number): Tensor {
  const m = lessEqual(expandDims(arange(x.shape[0]!), -1), keep - 1);
  return where(m, x, 0);
}

/**
 * sparse_matmul's shard_map body on one rank of `group`. `w` holds this rank's experts
 * (wi_0/wi_1/wo [e,...], biases [e,...]); inputs/logits are this rank's view (its batch slice,
 * or the whole batch when replicated). `ffn` computes the received rows (default: expertFfn on this rank;
 * tensor-parallel.ts's meshFfn splits it over the tensor axes).
 */
export async function sparseMatmulExpertParallel(
  cfg: MoeConfig,
  group: Group,
  path: EpPath,
  inputs_BSD: Tensor,
  gateLogits_BSE: Tensor,
  preBiasLogits_BSE: Tensor | undefined,
  w: AnyExpertWeights,
  rng?: RoutingRng,
  ffn: RowFfn = (x, gs, ids, order) => Promise.resolve(expertFfn(cfg, x, gs, ids, w, order)),
): Promise<EpResult> {
  const N = group.size;
  const s = group.rank;
  const E = cfg.numExperts;
  const e = E / N;
  if (!Number.isInteger(e)) throw new MoeError(`[expert_parallel] num_experts (${E}) not divisible by ${N} ranks`);
  if (w.wi0.shape[0] !== e) throw new MoeError(`[expert_parallel] rank ${s} holds ${w.wi0.shape[0]} experts, expected ${e}`);

  if (path === "ring_of_experts") {
    const [x, logits] = [await allGather(group, inputs_BSD), await allGather(group, gateLogits_BSE)];
    const pre = preBiasLogits_BSE === undefined ? undefined : await allGather(group, preBiasLogits_BSE);
    const [B, S] = x.shape as [number, number];
    const [xs, order, weights, groupSizesAll, sortedExperts, lbLoss, biasUpdates, selected] = permute(cfg, x, logits, pre, {
      rng,
      rollToExpertId: e * s,
    });
    const groupSizes = sliceAxis(groupSizesAll, 0, 0, e);
    const kept = sum(groupSizes).item();
    const out = maskRows(await ffn(maskRows(xs, kept), groupSizes, sortedExperts), kept);
    const partial = unpermute(cfg, out, order, weights, B, S);
    const output = await psumScatter(group, partial);
    const local = (t: Tensor): Tensor => sliceAxis(t, 0, (s * B) / N, ((s + 1) * B) / N);
    return {
      output,
      topKWeights_BSK: local(weights),
      topKIndices_BSK: local(selected),
      lbLoss,
      biasUpdates,
      groupSizes_E: groupSizesAll,
      ep: { path, localGroupSizes: groupSizes },
    };
  }

  const [B, S] = inputs_BSD.shape as [number, number];
  const [x, order, weights, groupSizes, sortedExperts, lbLoss, biasUpdates, selected] = permute(
    cfg,
    inputs_BSD,
    gateLogits_BSE,
    preBiasLogits_BSE,
    { rng },
  );
  const rows = x.shape[0]!;
  const perShard = sum(reshape(groupSizes, [N, e]), 1);
  const common = { topKWeights_BSK: weights, topKIndices_BSK: selected, lbLoss, biasUpdates, groupSizes_E: groupSizes };

  if (path === "batch_sharded") {
    const A = await allGatherStack(group, perShard);
    const bufferRows = getRaggedBufferSize(rows, N, E, cfg.numExpertsPerTok, cfg.raggedBufferFactor);
    const fwd = params(getAllToAllParams(A, s, N));
    const incoming = fwd.recvSizes.reduce((a, b) => a + b, 0);
    if (incoming > bufferRows) {
      throw new MoeError(
        `[expert_parallel] rank ${s} receives ${incoming} rows but the ragged buffer holds ${bufferRows} (ragged_buffer_factor=${cfg.raggedBufferFactor}): ${incoming - bufferRows} rows would be dropped; raise ragged_buffer_factor or use -1 (worst case)`,
      );
    }
    // the receive buffer holds the rows that arrive, not the worst case: rows past them would reach no output
    const received = await raggedAllToAll(group, x, incoming, fwd);
    const globalGroupSizes = await allGatherStack(group, groupSizes);
    // local_permute's order goes to the FFN, which groups the rows by it and returns them in received order
    const [localOrder, localSizes, localIds] = localPermuteOrder(incoming, globalGroupSizes, e, s);
    const unsorted = await ffn(received, localSizes, localIds, localOrder);
    const back = params(getAllToAllParams(transpose(A), s, N));
    const returned = await raggedAllToAll(group, unsorted, rows, back);
    const output = unpermute(cfg, returned, order, weights, B, S);
    return { output, ...common, ep: { path, allShardsGroupSizes: A, raggedBufferSize: bufferRows, localGroupSizes: localSizes } };
  }

  // batch replicated (decode): every rank routes all tokens and computes its own experts' rows
  const [xl, , localSizes, localIds] = localPermute(x, reshape(groupSizes, [1, E]), e, s, true, sortedExperts, cfg.useCustomSortVjp);
  const out = await ffn(xl, localSizes, localIds);
  const back = params(getAllToAllParams(perShard, s, N, false));
  const gathered = await raggedAllToAll(group, out, rows, back);
  const output = unpermute(cfg, gathered, order, weights, B, S);
  return { output, ...common, ep: { path, localGroupSizes: localSizes } };
}

/** This rank's slice [e, ...] of a tensor over all experts [E, ...]. */
export function expertShard(t: Tensor, rank: number, size: number): Tensor {
  const e = t.shape[0]! / size;
  return sliceAxis(t, 0, rank * e, (rank + 1) * e);
}
