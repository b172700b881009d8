// Estimates of what a layer allocates, for checkMemory (core/memory.ts) before anything is allocated. They
// count the large arrays of each path, and err on the high side.
// Legend: B batch, S sequence, T tokens (B·S), D model dim, H expert hidden, E experts, K experts per token,
// R routed rows (T·K), C expert capacity.
import type { DType } from "../core/dtype.js";
import type { MemoryEstimate } from "../core/memory.js";
import type { MoeConfig } from "./config.js";
import { expertCapacity } from "./dispatch.js";

/** Bytes per element as held in memory (bfloat16 values live in float32 arrays). */
const BYTES: Readonly<Record<DType, number>> = { float32: 4, bfloat16: 4, float64: 8, int32: 4, int8: 1, uint8: 1 };

const product = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Parameters of these shapes, and the initialiser's temporaries (a draw and a scaled copy of the largest). */
export function weightEstimate(shapes: readonly (readonly number[])[], dtype: DType): MemoryEstimate {
  const sizes = shapes.map(product);
  const b = BYTES[dtype];
  return { weights: b * sizes.reduce((a, n) => a + n, 0), "initialiser temporaries": 2 * b * Math.max(0, ...sizes) };
}

/** The activations of one forward pass over an input [B,S,D] (plus a shared MLP of width `sharedDim`). */
export function forwardEstimate(cfg: MoeConfig, B: number, S: number, sharedDim = 0): MemoryEstimate {
  const D = cfg.expertInputDim;
  const E = cfg.numExperts;
  const H = cfg.moeMlpDim;
  const K = cfg.numExpertsPerTok;
  const T = B * S;
  const R = T * K;
  // input, routing input and output [T,D]; logits, scores and routing temporaries [T,E]
  let elements = T * (4 * D + 6 * E) + T * sharedDim * 3;
  if (cfg.sparseMatmul) {
    // sorted rows and the expert output [R,D]; h0, h1 and the activation [R,H]
    elements += R * (3 * D + 3 * H);
  } else if (cfg.capacityFactor > 0) {
    const C = expertCapacity(S * K, E, cfg.capacityFactor);
    // masks [B,S,K,E] and [B,S,E,C]; expert inputs [E,B,C,D] and hidden [E,B,C,H]
    elements += 6 * R * E + 3 * T * E * C + E * B * C * (D + 3 * H);
  } else {
    // every expert on every token: [B,S,E,H] hidden and [B,S,E,D] outputs
    elements += T * E * (D + 3 * H + 2);
  }
  return { activations: BYTES[cfg.dtype] * elements, input: BYTES[cfg.dtype] * T * D };
}
