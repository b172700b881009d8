import type { Tensor } from "../core/tensor.js";
import { MoeError } from "../core/errors.js";
import { fmt, shapesEqual } from "../core/shape.js";
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
    attachNode([out], args, (cts) => {
      const r = bwd(res, cts[0]!);
      r.forEach((c, i) => {
        if (c !== undefined && !shapesEqual(c.shape, args[i]!.shape))
          throw new MoeError(`[customVjp] the backward's cotangent ${i} is ${fmt(c.shape)}, its input ${fmt(args[i]!.shape)}`);
      });
      return r;
    });
    return out;
  };
}
