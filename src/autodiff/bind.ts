// The one way ops run a primitive: dispatch it (shape rule, kernel), then, while recording, attach its VJP rule.
import type { Tensor } from "../core/tensor.js";
import { apply } from "../backends/dispatch.js";
import type { Params, Prim } from "../prims/prims.js";
import { attachNode, isRecording } from "./graph.js";
import { vjpRules } from "./vjp-rules.js";

/** Apply a primitive and, while recording, attach its VJP rule to the outputs. */
export function bind<P extends Prim>(prim: P, inputs: readonly Tensor[], params: Params<P>): Tensor[] {
  const outs = apply(prim, inputs, params);
  const rule = vjpRules[prim];
  if (rule !== null && isRecording()) {
    attachNode(outs, inputs, (cts) => rule(cts, inputs, outs, params));
  }
  return outs;
}

export function bind1<P extends Prim>(prim: P, inputs: readonly Tensor[], params: Params<P>): Tensor {
  return bind(prim, inputs, params)[0]!;
}
