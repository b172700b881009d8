import { roundBf16InPlace } from "../core/dtype.js";
import { Tensor } from "../core/tensor.js";
import { getBackend, registerBackend } from "../backends/backend.js";
import { refBackend } from "../backends/ref/index.js";
import { Prim, type Params } from "../prims/prims.js";
import { shapeRules } from "../prims/shape-rules.js";
import { attachNode, isRecording } from "../autodiff/graph.js";
import { vjpRules } from "../autodiff/vjp-rules.js";

registerBackend(refBackend);

/** Apply a primitive: shape rule, kernel on the current backend (ref fallback), graph node. */
export function bind<P extends Prim>(prim: P, inputs: readonly Tensor[], params: Params<P>): Tensor[] {
  const avals = shapeRules[prim](inputs, params);
  const backend = getBackend();
  const impl = backend.supports(prim, inputs) ? backend : refBackend;
  const datas = impl.run(prim, inputs, params, avals);
  const outs = avals.map((a, i) => {
    const d = datas[i]!;
    if (a.dtype === "bfloat16") roundBf16InPlace(d as Float32Array);
    return new Tensor(d, a.shape, a.dtype);
  });
  const rule = vjpRules[prim];
  if (rule !== null && isRecording()) {
    attachNode(outs, inputs, (cts) => rule(cts, inputs, outs, params));
  }
  return outs;
}

export function bind1<P extends Prim>(prim: P, inputs: readonly Tensor[], params: Params<P>): Tensor {
  return bind(prim, inputs, params)[0]!;
}
