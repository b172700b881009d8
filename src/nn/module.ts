import { MoeError, ShapeError } from "../core/errors.js";
import { tensorArg } from "../ops/args.js";
import { fmt, shapesEqual } from "../core/shape.js";
import { Tensor } from "../core/tensor.js";

/** A flat, ordered parameter tree: MaxText-style paths ("gate/kernel", "wi_0") to tensors. */
export type Params = Record<string, Tensor>;

/** A module owns named parameters and exposes them by MaxText path in a stable order. */
export abstract class Module {
  /** [path, tensor] pairs, MaxText names, stable order. */
  abstract parameters(): [string, Tensor][];

  /**
   * Replace parameters by path (some or all); shapes must match, and unknown paths are an error. Dtypes may differ
   * (weights as a checkpoint stores them). The module then holds the given tensors themselves: an optimizer made
   * over the ones it held before updates those, so make it after loading.
   */
  loadParameters(params: Params): void {
    const own = new Map(this.parameters());
    for (const [path, t] of Object.entries(params)) {
      const cur = own.get(path);
      if (cur === undefined)
        throw new MoeError(`[params] ${this.constructor.name} has no parameter "${path}" (have: ${[...own.keys()].join(", ")})`);
      tensorArg(t, "params", `"${path}"`);
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
