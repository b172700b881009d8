import { MoeError, ShapeError } from "../core/errors.js";
import { fmt, shapesEqual } from "../core/shape.js";
import { Tensor } from "../core/tensor.js";

/** A flat, ordered parameter tree: MaxText-style paths ("gate/kernel", "wi_0") to tensors. */
export type Params = Record<string, Tensor>;

/** A module owns named parameters and exposes them by MaxText path in a stable order. */
export abstract class Module {
  /** [path, tensor] pairs, MaxText names, stable order. */
  abstract parameters(): [string, Tensor][];

  /** Replace parameters by path; shapes must match. Unknown paths are an error. */
  loadParameters(params: Params): void {
    const own = new Map(this.parameters());
    for (const [path, t] of Object.entries(params)) {
      const cur = own.get(path);
      if (cur === undefined)
        throw new MoeError(`[params] ${this.constructor.name} has no parameter "${path}" (have: ${[...own.keys()].join(", ")})`);
      if (!shapesEqual(cur.shape, t.shape)) {
        throw new ShapeError(`[params] "${path}" expects shape ${fmt(cur.shape)}, got ${fmt(t.shape)}`);
      }
    }
    this.setParameters(params);
  }

  protected abstract setParameters(params: Params): void;

  paramRecord(): Params {
    return Object.fromEntries(this.parameters());
  }

  numParameters(): number {
    return this.parameters().reduce((a, [, t]) => a + t.size, 0);
  }
}
