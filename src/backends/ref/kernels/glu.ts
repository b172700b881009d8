// The expert FFN's GLU, forward as the op composition rounds it (every op's result rounded to the layer's dtype,
// scalars too, as ops/nn.ts builds the activations) and backward in float64 (closed-form derivatives; JAX's conventions: relu'(0) = 0, min and
// clip pass half the gradient at an exact tie).
import type { FfnActivation } from "../../../prims/expert-ffn.js";
import { max2, min2, sigmoid } from "./elementwise.js";

/** Rounds a float64 result to the layer's dtype (as an op's output is stored). */
export type Rounding = (x: number) => number;

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

/** f(x) with each op's result rounded by `f`, as the composition of ops computes it. */
function activationRounded(name: FfnActivation, f: Rounding): (x: number) => number {
  switch (name) {
    case "linear":
      return (x) => x;
    case "silu":
      return (x) => f(x * f(sigmoid(x)));
    case "sigmoid":
      return (x) => f(sigmoid(x));
    case "relu":
      return (x) => (x > 0 ? x : 0);
    case "gelu": {
      const c = f(GELU_C);
      const a = f(GELU_A);
      return (x) => {
        const inner = f(f(x + f(f(f(x * x) * x) * a)) * c);
        return f(f(x * 0.5) * f(f(Math.tanh(inner)) + 1));
      };
    }
  }
}

/** [f(x), f'(x)] in float64. */
export function activationGrad(name: FfnActivation): (x: number) => [number, number] {
  switch (name) {
    case "linear":
      return (x) => [x, 1];
    case "silu":
      return (x) => {
        const s = sigmoid(x);
        return [x * s, s * (1 + x * (1 - s))];
      };
    case "sigmoid":
      return (x) => {
        const s = sigmoid(x);
        return [s, s * (1 - s)];
      };
    case "relu":
      return (x) => (x > 0 ? [x, 1] : [0, 0]);
    case "gelu":
      return (x) => {
        const t = Math.tanh(GELU_C * (x + GELU_A * x * x * x));
        return [0.5 * x * (1 + t), 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * GELU_A * x * x)];
      };
  }
}

export interface GluSpec {
  activation: FfnActivation;
  clampLimit: number;
  alpha: number;
}

/** act(h0, h1) as the op composition in the dtype that `f` rounds to computes it. */
export function gluRounded(p: GluSpec, f: Rounding): (h0: number, h1: number) => number {
  const act = activationRounded(p.activation, f);
  if (p.clampLimit === 0) return (h0, h1) => f(act(h0) * h1);
  const L = f(p.clampLimit);
  const lo = f(-p.clampLimit);
  const alpha = f(p.alpha);
  return (h0, h1) => {
    const a = min2(h0, L);
    const b = min2(max2(h1, lo), L);
    return f(f(a * act(f(a * alpha))) * f(b + 1));
  };
}

/** d act / d h0 and d act / d h1, in float64. */
export function gluGrad(p: GluSpec): (h0: number, h1: number) => [number, number] {
  const act = activationGrad(p.activation);
  if (p.clampLimit === 0) {
    return (h0, h1) => {
      const [fx, dfx] = act(h0);
      return [dfx * h1, fx];
    };
  }
  const L = Math.fround(p.clampLimit);
  const alpha = Math.fround(p.alpha);
  // d min(x, L)/dx and d max(x, −L)/dx: 1 on the open side, ½ at a tie, 0 beyond
  const dMin = (x: number): number => (x < L ? 1 : x === L ? 0.5 : 0);
  const dMax = (x: number): number => (x > -L ? 1 : x === -L ? 0.5 : 0);
  return (h0, h1) => {
    const a = Math.min(h0, L);
    const m = Math.max(h1, -L);
    const b = Math.min(m, L);
    const [g, dg] = act(alpha * a);
    return [(g + a * alpha * dg) * (b + 1) * dMin(h0), a * g * dMin(m) * dMax(h1)];
  };
}
