import { tensorArg } from "./args.js";
import { UnsupportedError } from "../core/errors.js";
import type { Tensor } from "../core/tensor.js";
import { bind1 } from "../autodiff/bind.js";
import { stopGradient } from "../autodiff/graph.js";
import { normalizeAxis } from "../core/shape.js";
import { Prim } from "../prims/prims.js";
import {
  abs,
  add,
  div,
  exp,
  greater,
  greaterEqual,
  less,
  log,
  log1p,
  maximum,
  minimum,
  mul,
  neg,
  sigmoid,
  sqrt,
  sub,
  tanh,
  where,
} from "./elementwise.js";
import { sliceAxis } from "./movement.js";
import { max, sum } from "./reduce.js";

/**
 * Softmax along `axis` (max-shifted; the shift carries no gradient, as in jax.nn.softmax): one primitive for float32
 * and float64, whose result is the composition's below bit for bit.
 */
export function softmax(x: Tensor, axis = -1): Tensor {
  tensorArg(x, "softmax");
  if (x.dtype === "float32" || x.dtype === "float64") return bind1(Prim.Softmax, [x], { axis: normalizeAxis(axis, x.ndim, "softmax") });
  const e = exp(sub(x, stopGradient(max(x, axis, true))));
  return div(e, sum(e, axis, true));
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  tensorArg(x, "logSoftmax");
  const shifted = sub(x, stopGradient(max(x, axis, true)));
  return sub(shifted, log(sum(exp(shifted), axis, true)));
}

export const silu = (x: Tensor): Tensor => mul(x, sigmoid(x));
/** relu with derivative 0 at 0 (jax.nn.relu). */
export const relu = (x: Tensor): Tensor => where(greater(x, 0), x, 0);
/** gelu, tanh approximation (jax.nn.gelu default approximate=True). */
export function gelu(x: Tensor): Tensor {
  tensorArg(x, "gelu");
  const c = Math.sqrt(2 / Math.PI);
  const inner = mul(add(x, mul(mul(mul(x, x), x), 0.044715)), c);
  return mul(mul(x, 0.5), add(tanh(inner), 1));
}
/** log(1 + e^x), overflow-safe. */
export const softplus = (x: Tensor): Tensor => add(maximum(x, 0), log1p(exp(neg(abs(x)))));
export const logSigmoid = (x: Tensor): Tensor => neg(softplus(neg(x)));
const expm1 = (x: Tensor): Tensor => sub(exp(x), 1);
export const elu = (x: Tensor, alpha = 1): Tensor => where(greater(x, 0), x, mul(expm1(x), alpha));
export const celu = (x: Tensor, alpha = 1): Tensor => where(greater(x, 0), x, mul(expm1(div(x, alpha)), alpha));
export const selu = (x: Tensor): Tensor => mul(elu(x, 1.6732632423543772), 1.0507009873554805);
export const leakyRelu = (x: Tensor, slope = 0.01): Tensor => where(greaterEqual(x, 0), x, mul(x, slope));
export const relu6 = (x: Tensor): Tensor => minimum(maximum(x, 0), 6);
export const hardSigmoid = (x: Tensor): Tensor => div(relu6(add(x, 3)), 6);
export const hardSilu = (x: Tensor): Tensor => mul(x, hardSigmoid(x));
export const hardTanh = (x: Tensor): Tensor => where(greater(x, 1), 1, where(less(x, -1), -1, x));
export const softSign = (x: Tensor): Tensor => div(x, add(abs(x), 1));
export const sqrtSoftplus = (x: Tensor): Tensor => sqrt(softplus(x));
/** glu along the last axis: first half * sigmoid(second half). */
export function glu(x: Tensor): Tensor {
  tensorArg(x, "glu");
  const n = x.shape[x.ndim - 1]!;
  return mul(sliceAxis(x, -1, 0, n / 2), sigmoid(sliceAxis(x, -1, n / 2, n)));
}

export type Activation = (x: Tensor) => Tensor;

const ACTIVATIONS: Record<string, Activation> = {
  linear: (x) => x,
  silu,
  swish: silu,
  sigmoid,
  relu,
  gelu,
  softmax: (x) => softmax(x),
  log_softmax: (x) => logSoftmax(x),
  tanh,
  softplus,
  elu: (x) => elu(x),
  celu: (x) => celu(x),
  selu,
  leaky_relu: (x) => leakyRelu(x),
  relu6,
  hard_sigmoid: hardSigmoid,
  hard_silu: hardSilu,
  hard_swish: hardSilu,
  hard_tanh: hardTanh,
  log_sigmoid: logSigmoid,
  soft_sign: softSign,
  glu,
  sqrtsoftplus: sqrtSoftplus,
};

export const ACTIVATION_NAMES: readonly string[] = Object.keys(ACTIVATIONS);

/** MaxText `_convert_to_activation_function`: "linear" is the identity, other names are JAX's. */
export function getActivation(name: string): Activation {
  const f = ACTIVATIONS[name];
  if (f === undefined) {
    throw new UnsupportedError(`[activation] unknown activation "${name}" (known: ${ACTIVATION_NAMES.join(", ")})`);
  }
  return f;
}
