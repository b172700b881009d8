// Hook for backends with fused MoE kernels (gather + GLU + grouped matmuls + combine in one pass).
import type { Tensor } from "../core/tensor.js";
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
