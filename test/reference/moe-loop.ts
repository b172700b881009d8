// Test-only oracle (MaxText MoeLoopBlock / scattermoe dumb_forward): one token at a time, each chosen
// expert applied with plain slices. Shares no code with permute, gmm, dispatch or getTopk: routing is
// re-derived here from the logits' values, and only elementwise/matmul ops are used (for autodiff).
import { tensor, type Tensor } from "../../src/core/tensor.js";
import { add, clip, div, exp, minimum, mul, sigmoid } from "../../src/ops/elementwise.js";
import { matmul } from "../../src/ops/matmul.js";
import { concatenate, reshape, sliceAxis, stack } from "../../src/ops/movement.js";
import { getActivation } from "../../src/ops/nn.js";
import { sum } from "../../src/ops/reduce.js";
import type { MoeConfig } from "../../src/moe/config.js";

export interface LoopWeights {
  gateKernel: Tensor;
  gateBias?: Tensor;
  wi0: Tensor;
  wi1: Tensor;
  wo: Tensor;
  wi0Bias?: Tensor;
  wi1Bias?: Tensor;
  woBias?: Tensor;
  perExpertScale?: Tensor;
}

/** indices of the k largest values, descending, ties to the lower index */
function topIdx(v: number[], k: number, allowed?: boolean[]): number[] {
  const ids = v.map((_, i) => i).filter((i) => allowed?.[i] ?? true);
  ids.sort((a, b) => (v[b]! !== v[a]! ? v[b]! - v[a]! : a - b));
  return ids.slice(0, k);
}

function selectExperts(cfg: MoeConfig, logits: number[]): number[] {
  const E = cfg.numExperts;
  if (cfg.isDeepseek3 && cfg.nRoutingGroups > 0) {
    const G = cfg.nRoutingGroups;
    const per = E / G;
    const scores = Array.from({ length: G }, (_, g) => {
      const grp = logits.slice(g * per, (g + 1) * per).sort((a, b) => b - a);
      return grp[0]! + grp[1]!;
    });
    const keep = new Set(topIdx(scores, cfg.topkRoutingGroup));
    return topIdx(
      logits,
      cfg.numExpertsPerTok,
      logits.map((_, e) => keep.has(Math.floor(e / per))),
    );
  }
  return topIdx(logits, cfg.numExpertsPerTok);
}

const pick = (v: Tensor, ids: number[]): Tensor => concatenate(ids.map((i) => sliceAxis(v, 0, i, i + 1)));

function softmaxVec(v: Tensor): Tensor {
  const m = Math.max(...Array.from(v.data));
  const e = exp(add(v, -m));
  return div(e, sum(e));
}

/** Routing weights of one token, [K], differentiable in the token's logits. */
function routeWeights(cfg: MoeConfig, logits: Tensor, pre: Tensor, ids: number[]): Tensor {
  let w: Tensor;
  if (cfg.isDeepseek3) w = pick(pre, ids);
  else if (cfg.decoderBlock === "gemma4") w = pick(softmaxVec(logits), ids);
  else w = pick(logits, ids);
  if (cfg.decoderBlock === "deepseek") {
    if (cfg.routedScoreFunc === "sigmoid") w = div(w, sum(w));
    w = mul(w, cfg.routedScalingFactor);
  } else if (cfg.decoderBlock !== "llama4" && cfg.decoderBlock !== "gemma4") {
    w = softmaxVec(w);
  }
  if (cfg.normTopkProb) w = div(w, sum(w));
  return w;
}

/** One expert on one token x [1,D] -> [D]. */
export function expert(cfg: MoeConfig, w: LoopWeights, e: number, x_1D: Tensor): Tensor {
  const at = (t: Tensor): Tensor => reshape(sliceAxis(t, 0, e, e + 1), t.shape.slice(1));
  let h0 = matmul(x_1D, at(w.wi0));
  let h1 = matmul(x_1D, at(w.wi1));
  if (cfg.mlpBias) {
    h0 = add(h0, at(w.wi0Bias!));
    h1 = add(h1, at(w.wi1Bias!));
  }
  const act = getActivation(cfg.mlpActivations[0]!);
  let h: Tensor;
  if (cfg.decoderBlock === "gpt_oss") {
    const L = cfg.mlpActivationsLimit;
    const a = minimum(h0, L);
    h = mul(mul(a, act(mul(a, 1.702))), add(clip(h1, -L, L), 1));
  } else h = mul(act(h0), h1);
  let wo = at(w.wo);
  if (w.perExpertScale !== undefined) wo = mul(wo, reshape(sliceAxis(w.perExpertScale, 0, e, e + 1), [1, 1]));
  let o = matmul(h, wo);
  if (cfg.mlpBias) o = add(o, at(w.woBias!));
  return reshape(o, [-1]);
}

/** The routed layer (dropless) one token at a time: x [B,S,D] -> [B,S,D]. */
export function moeLoop(cfg: MoeConfig, w: LoopWeights, x: Tensor): Tensor {
  const [B, S, D] = x.shape as [number, number, number];
  const score = cfg.routedScoreFunc === "" ? (t: Tensor) => t : getActivation(cfg.routedScoreFunc);
  const rows: Tensor[] = [];
  for (let t = 0; t < B * S; t++) {
    const xt = reshape(sliceAxis(reshape(x, [B * S, D]), 0, t, t + 1), [1, D]);
    const pre = reshape(score(matmul(xt, w.gateKernel)), [-1]);
    const logits = cfg.routedBias ? add(pre, w.gateBias!) : pre;
    const ids = selectExperts(cfg, Array.from(logits.data));
    const weights = routeWeights(cfg, logits, pre, ids);
    let y: Tensor = tensor(new Array<number>(D).fill(0), [D], x.dtype);
    ids.forEach((e, j) => {
      if (cfg.decoderBlock === "llama4") {
        const s = sigmoid(sliceAxis(weights, 0, j, j + 1));
        y = add(y, expert(cfg, w, e, mul(xt, reshape(s, [1, 1]))));
      } else y = add(y, mul(expert(cfg, w, e, xt), sliceAxis(weights, 0, j, j + 1)));
    });
    rows.push(y);
  }
  return reshape(stack(rows), [B, S, D]);
}
