import type { Tensor } from "../core/tensor.js";
import { attachNode, noGrad } from "./graph.js";

/**
 * A function with a hand-written backward: `fwd` computes the output and residuals, `bwd` maps the
 * output cotangent to the input cotangents (undefined = none).
 */
export function customVjp<A extends Tensor[], R>(
  fwd: (...args: A) => { out: Tensor; res: R },
  bwd: (res: R, ct: Tensor) => (Tensor | undefined)[],
): (...args: A) => Tensor {
  return (...args: A) => {
    const { out, res } = noGrad(() => fwd(...args));
    attachNode([out], args, (cts) => bwd(res, cts[0]!));
    return out;
  };
}
