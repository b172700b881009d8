// Optimizer updates in place (prims/optim-steps.ts): the parameter and state tensors' storage is rewritten.
import { Tensor } from "../core/tensor.js";
import { bind } from "../autodiff/bind.js";
import type { AdamwStepParams, SgdStepParams } from "../prims/optim-steps.js";
import { Prim } from "../prims/prims.js";

export type { AdamwStepParams, SgdStepParams };

export function adamwStep(p: Tensor, g: Tensor, m: Tensor, v: Tensor, params: AdamwStepParams): void {
  bind(Prim.AdamwStep, [p, g, m, v], params);
  Tensor.rewritten([p, m, v]);
}

export function sgdStep(p: Tensor, g: Tensor, trace: Tensor | undefined, params: Omit<SgdStepParams, "hasTrace">): void {
  bind(Prim.SgdStep, trace === undefined ? [p, g] : [p, g, trace], { ...params, hasTrace: trace !== undefined });
  Tensor.rewritten(trace === undefined ? [p] : [p, trace]);
}
