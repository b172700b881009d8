// Running one primitive: its shape rule, then its kernel on the active backend, or on the reference backend
// when the active one does not support these inputs. No graph: autodiff/bind.ts adds that.
import { DTypeError, MoeError } from "../core/errors.js";
import { Tensor } from "../core/tensor.js";
import { Prim, type Params } from "../prims/prims.js";
import { shapeRules } from "../prims/shape-rules.js";
import { refBackend } from "./ref/index.js";
import { activeBackend } from "./select.js";
import { capturing, checkCapturable, quietly, recordCaptured } from "./jit.js";
import { runKernel } from "./run-kernel.js";

/** The primitives that take int8 / uint8 tensors (quantized codes): the ones that decode them, and moving them. */
const CODE_PRIMS: ReadonlySet<Prim> = new Set([Prim.QuantizedGmm, Prim.Reshape, Prim.Slice, Prim.Concat]);
const takesCodes = (prim: Prim, params: unknown): boolean =>
  CODE_PRIMS.has(prim) || (prim === Prim.ExpertFfn && (params as Params<Prim.ExpertFfn>).quantized !== undefined);

export function apply<P extends Prim>(prim: P, inputs: readonly Tensor[], params: Params<P>): Tensor[] {
  // a JavaScript caller's undefined (ops.add(t, o.lbLoss) without a loss) would fail as a TypeError further in
  const bad = inputs.findIndex((t) => !(t instanceof Tensor));
  if (bad >= 0) throw new MoeError(`[${prim}] operand ${bad} is ${inputs[bad] === null ? "null" : typeof inputs[bad]}, not a Tensor`);
  const code = takesCodes(prim, params) ? undefined : inputs.find((t) => t.dtype === "int8" || t.dtype === "uint8");
  if (code !== undefined)
    throw new DTypeError(
      `[${prim}] does not take ${code.dtype} codes (quantized weights): only quantized_gmm and the served expert_ffn decode them`,
    );
  const avals = shapeRules[prim](inputs, params);
  const backend = activeBackend();
  const captured = capturing();
  if (captured) checkCapturable(prim);
  const impl = (captured ? quietly(() => backend.supports(prim, inputs, params)) : backend.supports(prim, inputs, params))
    ? backend
    : refBackend;
  const outs = captured ? quietly(() => runKernel(impl, prim, inputs, params, avals)) : runKernel(impl, prim, inputs, params, avals);
  if (captured) recordCaptured(prim, params, impl, avals, inputs, outs);
  return outs;
}
