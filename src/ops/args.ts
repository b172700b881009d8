// The tensor arguments of the public ops, checked before their shapes are read: JavaScript callers pass typed arrays
// and nested arrays where a Tensor goes, which otherwise failed inside the op with a TypeError.
import { MoeError } from "../core/errors.js";
import { Tensor } from "../core/tensor.js";

/** What `v` is, for a message: "a Float32Array", "an Array", "null", "a number". */
export function kindOf(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  const name = typeof v === "object" ? ((v.constructor as { name?: string } | undefined)?.name ?? "Object") : typeof v;
  return `${/^[AEIOU]/i.test(name) ? "an" : "a"} ${name}`;
}

/** Throws a MoeError naming `where` and `what` (argument `what` for a number) when `x` is not a Tensor. */
export function tensorArg(x: unknown, where: string, what: string | number = 0): asserts x is Tensor {
  if (!(x instanceof Tensor)) {
    const named = typeof what === "number" ? `argument ${what}` : what;
    throw new MoeError(`[${where}] ${named} is ${kindOf(x)}, not a Tensor (make one with tensor(values, shape, dtype))`);
  }
}
