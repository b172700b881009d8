// Runs a golden case through moekit: forward, every gradient, and the side outputs it lists.
import type { Tensor } from "../../core/tensor.js";
import { MoeError } from "../../core/errors.js";
import { valueAndGrad } from "../../autodiff/grad.js";
import { noGrad, stopGradient } from "../../autodiff/graph.js";
import { add, mul } from "../../ops/elementwise.js";
import { sum } from "../../ops/reduce.js";
import type { MoeConfig } from "../../moe/config.js";
import { routedMoeForward, routedWeightsFromPaths, type MoeOutput, type RoutedMoeWeights } from "../../moe/routed-moe.js";
import { MlpBlock } from "../../nn/mlp.js";
import { sharedExpertDim, sharedMlpBlock } from "../../moe/routed-and-shared-moe.js";
import { inputTensor, type GoldenCase } from "./case.js";

const NON_DIFF = new Set(["cotangent", "random_top_k_indices"]);

/** Outputs a case can ask for, by name. */
export type Produced = Record<string, Tensor | number | undefined>;

/** The routed weights among a case's inputs (golden names are paths with "_": gate_kernel = gate/kernel). */
export function routedWeights(named: Record<string, Tensor>): RoutedMoeWeights {
  return routedWeightsFromPaths((path) => named[path.replace("/", "_")], "golden");
}

/** The shared MLP when the case gives shared weights (RoutedAndSharedMoE), else undefined (RoutedMoE). */
export function sharedMlp(cfg: MoeConfig, named: Record<string, Tensor>): MlpBlock | undefined {
  if (named.shared_wo === undefined) return undefined;
  if (cfg.sharedExperts <= 0) throw new MoeError(`[golden] shared expert weights given but shared_experts=${cfg.sharedExperts}`);
  const mlp = sharedMlpBlock(cfg, sharedExpertDim(cfg));
  const n = cfg.mlpActivations.length;
  const p: Record<string, Tensor> = { "wo/kernel": named.shared_wo! };
  if (n === 1) p["wi/kernel"] = named.shared_wi!;
  else for (let i = 0; i < n; i++) p[`wi_${i}/kernel`] = named[`shared_wi_${i}`]!;
  mlp.loadParameters(p);
  return mlp;
}

/** Record the routing side outputs under the golden names. */
export function routingOutputs(o: MoeOutput, out: Produced): void {
  out.output = o.output;
  out.lb_loss = o.lbLoss;
  out.bias_updates = o.biasUpdates;
  out.top_k_indices = o.topKIndices_BSK;
  out.top_k_weights = o.topKWeights_BSK;
  out.gate_logits = o.gateLogits_BSE;
  out.pre_bias_logits = o.preBiasLogits_BSE;
  if (o.expertCapacity !== undefined) out.expert_capacity = o.expertCapacity;
  out.kept_mask = o.keptMask_BSK;
}

/** Runs the forward, and every gradient when the case gives a cotangent (forward-only cases give none). */
export function runSingleDevice(c: GoldenCase, cfg: MoeConfig): Produced {
  const diffNames = c.input_names.filter((n) => !NON_DIFF.has(n));
  const ct = c.input_names.includes("cotangent") ? inputTensor(c, "cotangent") : undefined;
  const rng = c.input_names.includes("random_top_k_indices") ? { topKIndices: inputTensor(c, "random_top_k_indices") } : undefined;
  const out: Produced = {};
  const f = (...args: Tensor[]): Tensor => {
    const named: Record<string, Tensor> = Object.fromEntries(diffNames.map((n, i) => [n, args[i]!]));
    const o = routedMoeForward(cfg, routedWeights(named), named.x!, { gateInputs: named.gate_inputs, rng });
    routingOutputs(o, out);
    const mlp = sharedMlp(cfg, named);
    let y = o.output;
    if (mlp !== undefined) {
      const s = mlp.forward(named.x!);
      out.routed_output = o.output;
      out.shared_output = s;
      y = add(o.output, s);
      out.output = y;
    }
    const obj = sum(mul(y, ct ?? y));
    return o.lbLoss === undefined ? obj : add(obj, o.lbLoss);
  };
  const inputs = diffNames.map((n) => inputTensor(c, n));
  if (ct === undefined) noGrad(() => f(...inputs));
  else valueAndGrad(f)(...inputs).grads.forEach((g, i) => (out[`grad_${diffNames[i]}`] = g));
  for (const [k, v] of Object.entries(out)) if (v !== undefined && typeof v !== "number") out[k] = stopGradient(v);
  return out;
}
