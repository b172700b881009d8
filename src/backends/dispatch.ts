// Running one primitive: its shape rule, then its kernel on the active backend, or on the reference backend
// when the active one does not support these inputs. No graph: autodiff/bind.ts adds that.
import { roundBf16InPlace } from "../core/dtype.js";
import { Tensor } from "../core/tensor.js";
import type { Params, Prim } from "../prims/prims.js";
import { shapeRules } from "../prims/shape-rules.js";
import { refBackend } from "./ref/index.js";
import { activeBackend } from "./select.js";

export function apply<P extends Prim>(prim: P, inputs: readonly Tensor[], params: Params<P>): Tensor[] {
  const avals = shapeRules[prim](inputs, params);
  const backend = activeBackend();
  const impl = backend.supports(prim, inputs, params) ? backend : refBackend;
  const datas = impl.run(prim, inputs, params, avals);
  return avals.map((a, i) => {
    const d = datas[i]!;
    if (a.dtype === "bfloat16" && d instanceof Float32Array) roundBf16InPlace(d);
    return new Tensor(d, a.shape, a.dtype);
  });
}
