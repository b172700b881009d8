import type { TypedArray } from "../core/dtype.js";
import type { Tensor } from "../core/tensor.js";
import type { Aval } from "../prims/shape-rules.js";
import type { Params, Prim } from "../prims/prims.js";

/**
 * A backend computes primitives. Storage is a typed array in both directions, so a native backend can
 * hand back memory it owns (exposed as an ArrayBuffer) without copies.
 */
export interface Backend {
  readonly name: string;
  /** false lets the dispatcher fall back to `ref` for this primitive and these input types. */
  supports(prim: Prim, inputs: readonly Tensor[]): boolean;
  run<P extends Prim>(prim: P, inputs: readonly Tensor[], params: Params<P>, outs: readonly Aval[]): TypedArray[];
}

const registry = new Map<string, Backend>();
let current: Backend | undefined;

export function registerBackend(b: Backend): void {
  registry.set(b.name, b);
  current ??= b;
}

export function getBackend(name?: string): Backend {
  const b = name === undefined ? current : registry.get(name);
  if (b === undefined) {
    throw new Error(`[backend] ${name ?? "default"} is not registered (have: ${[...registry.keys()].join(", ")})`);
  }
  return b;
}

export function setBackend(name: string): Backend {
  current = getBackend(name);
  return current;
}

export function listBackends(): string[] {
  return [...registry.keys()];
}
