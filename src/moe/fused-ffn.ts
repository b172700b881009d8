// Hook for backends with fused MoE kernels (gather + GLU + grouped matmuls + combine in one pass).
import { full, type Tensor } from "../core/tensor.js";
import { arange } from "../ops/indexing.js";
import { pad, reshape, sliceAxis } from "../ops/movement.js";
import type { MoeConfig } from "./config.js";
import type { ExpertWeights } from "./experts.js";
import type { Routed } from "./permute.js";

/** A fused implementation of sparseExpertCombine; returns undefined when it does not apply. */
export type FusedMoeFfn = (cfg: MoeConfig, r: Routed, w: ExpertWeights, batchSize: number, sequenceLength: number) => Tensor | undefined;

let impl: FusedMoeFfn | undefined;

/** Install (or remove, with undefined) the fused path; the reference composition is used otherwise. */
export function setFusedMoeFfn(f: FusedMoeFfn | undefined): void {
  impl = f;
}

export function fusedMoeFfn(cfg: MoeConfig, r: Routed, w: ExpertWeights, batchSize: number, sequenceLength: number): Tensor | undefined {
  return impl?.(cfg, r, w, batchSize, sequenceLength);
}

/**
 * expertFfn through the fused path: rows already grouped by expert (an expert-parallel rank's received rows) are
 * tokens routed to one expert each, in order, with combine weight 1 (an exact multiply). Rows past the groups (a
 * ragged buffer's padding, which never reaches an output) come back as zeros. Undefined when no fused path is
 * installed or it does not apply.
 */
export function fusedRowsFfn(cfg: MoeConfig, x_RD: Tensor, groupSizes_E: Tensor, w: ExpertWeights): Tensor | undefined {
  if (impl === undefined || x_RD.shape.length !== 2 || !(groupSizes_E.data instanceof Int32Array)) return undefined;
  const [R, D] = x_RD.shape as [number, number];
  let n = 0;
  for (const g of groupSizes_E.data) n += g;
  if (n > R || n === 0) return undefined;
  const rows = n < R ? sliceAxis(x_RD, 0, 0, n) : x_RD;
  const one: Routed = {
    inputs_TD: rows,
    weights_BSK: full([n, 1, 1], 1),
    selected_BSK: full([n, 1, 1], 0, "int32"),
    order_R: arange(n),
    groupSize_E: groupSizes_E,
    sortedExperts_R: full([n], 0, "int32"),
    lbLoss: undefined,
    biasUpdates: undefined,
  };
  const out = impl({ ...cfg, numExpertsPerTok: 1 }, one, w, n, 1);
  if (out === undefined) return undefined;
  const out_nD = reshape(out, [n, D]);
  return n < R ? pad(out_nD, [0, 0], [R - n, 0]) : out_nD;
}
