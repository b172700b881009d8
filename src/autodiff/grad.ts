import { MoeError } from "../core/errors.js";
import { full, Tensor, zeros } from "../core/tensor.js";
import { backwardAsync, backwardSync } from "./backward.js";
import { isRecording, makeLeaf, withRecording } from "./graph.js";

export interface ValueAndGrad<A extends Tensor[]> {
  value: Tensor;
  grads: { [I in keyof A]: Tensor };
}

function checkScalar(v: unknown): Tensor {
  if (!(v instanceof Tensor) || v.size !== 1) {
    throw new MoeError(`[grad] the function must return a one-element Tensor, got ${String(v)}`);
  }
  return v;
}

// how many (synchronous) differentiated functions are running: a gradient taken inside one while it records (not in
// a customVjp's forward), of a tensor it tracks, records no graph in the inner backward: the outer gradient would be 0
let inside = 0;

function refuseNested(args: readonly Tensor[]): void {
  if (inside > 0 && isRecording() && args.some((a) => a.node !== undefined))
    throw new MoeError(
      "[grad] higher-order gradients (a gradient inside a differentiated function, of a tensor it tracks) are not supported",
    );
}

function traced<T>(f: () => T): T {
  inside++;
  try {
    return withRecording(true, f);
  } finally {
    inside--;
  }
}

function fill(grads: (Tensor | undefined)[], leaves: readonly Tensor[]): Tensor[] {
  return grads.map((g, i) => g ?? zeros(leaves[i]!.shape, leaves[i]!.dtype));
}

/**
 * Value and gradient of a scalar function of tensors (reverse mode).
 *
 * @example
 * const { value, grads: [dx] } = valueAndGrad((x: Tensor) => sum(mul(x, x)))(tensor([1, 2]));
 */
export function valueAndGrad<A extends Tensor[]>(f: (...args: A) => Tensor): (...args: A) => ValueAndGrad<A> {
  return (...args: A) => {
    refuseNested(args);
    const leaves = args.map(makeLeaf) as A;
    const value = checkScalar(traced(() => f(...leaves)));
    const grads = fill(backwardSync([value], [full(value.shape, 1, value.dtype)], leaves), leaves);
    return { value, grads: grads as ValueAndGrad<A>["grads"] };
  };
}

export function grad<A extends Tensor[]>(f: (...args: A) => Tensor): (...args: A) => ValueAndGrad<A>["grads"] {
  const vg = valueAndGrad(f);
  return (...args: A) => vg(...args).grads;
}

/** Async variant for functions that communicate (expert parallelism): awaits collective VJPs. */
export function valueAndGradAsync<A extends Tensor[]>(f: (...args: A) => Promise<Tensor>): (...args: A) => Promise<ValueAndGrad<A>> {
  return async (...args: A) => {
    const leaves = args.map(makeLeaf) as A;
    const value = checkScalar(await f(...leaves));
    const grads = fill(await backwardAsync([value], [full(value.shape, 1, value.dtype)], leaves), leaves);
    return { value, grads: grads as ValueAndGrad<A>["grads"] };
  };
}

export interface VjpResult {
  outputs: Tensor[];
  /** cotangents of the outputs (undefined: zero) -> cotangents of the inputs */
  pullback(cts: readonly (Tensor | undefined)[]): Tensor[];
}

/** Outputs of `f` and its pullback (vector-Jacobian product). */
export function vjp<A extends Tensor[]>(f: (...args: A) => Tensor[], ...args: A): VjpResult {
  refuseNested(args);
  const leaves = args.map(makeLeaf) as A;
  const outputs = traced(() => f(...leaves));
  return {
    outputs,
    pullback: (cts) => fill(backwardSync(outputs, cts, leaves), leaves),
  };
}
