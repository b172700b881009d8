import type { TypedArray } from "../core/dtype.js";
import type { Aval } from "../core/shape.js";
import type { Tensor } from "../core/tensor.js";
import type { Params, Prim } from "../prims/prims.js";

/**
 * A backend computes primitives. Storage is a typed array in both directions, so a native backend can
 * hand back memory it owns (exposed as an ArrayBuffer) without copies.
 */
export interface Backend {
  readonly name: string;
  /** false lets the dispatcher fall back to `ref` for this primitive, these inputs and these params. */
  supports<P extends Prim>(prim: P, inputs: readonly Tensor[], params: Params<P>): boolean;
  run<P extends Prim>(prim: P, inputs: readonly Tensor[], params: Params<P>, outs: readonly Aval[]): TypedArray[];
  /** true where run() already leaves this primitive's bfloat16 outputs rounded (the dispatcher rounds the rest). */
  roundsBf16?(prim: Prim): boolean;
}
