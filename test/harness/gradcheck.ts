// Finite-difference gradient checks in float64 against reverse mode (valueAndGrad).
import { isFloat } from "../../src/core/dtype.js";
import { Tensor } from "../../src/core/tensor.js";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { mul } from "../../src/ops/elementwise.js";
import { sum } from "../../src/ops/reduce.js";

export interface GradcheckOptions {
  /** step h (default 1e-6 for the 2-point stencil, 1e-3 for the 4-point one) */
  eps?: number;
  /** 2: (f(x+h) - f(x-h)) / 2h; 4: (-f(x+2h) + 8f(x+h) - 8f(x-h) + f(x-2h)) / 12h */
  stencil?: 2 | 4;
  /** indices of the inputs to check (default: every float input; int32 inputs are never perturbed) */
  wrt?: readonly number[];
  /** denominator floor of the relative error |a - n| / max(|a|, |n|, floor) (default 1e-3) */
  floor?: number;
}

export interface GradcheckResult {
  value: number;
  /** max over checked elements of |a - n| / max(|a|, |n|, floor) */
  maxRelErr: number;
  maxAbsErr: number;
  worst: { input: number; index: number; analytic: number; numeric: number } | undefined;
  analytic: Float64Array[];
  numeric: Float64Array[];
  /** number of scalar derivatives compared */
  checked: number;
}

function scalar(t: Tensor): number {
  if (t.size !== 1) throw new Error(`gradcheck: f must return one element, got shape [${t.shape.join(",")}]`);
  return Number(t.data[0]);
}

/**
 * Compares valueAndGrad(f) with central finite differences, element by element. Every checked input
 * must be float64 (perturbing lower precisions measures rounding, not derivatives).
 */
export function gradcheck(f: (...xs: Tensor[]) => Tensor, inputs: readonly Tensor[], opts: GradcheckOptions = {}): GradcheckResult {
  const stencil = opts.stencil ?? 2;
  const h = opts.eps ?? (stencil === 2 ? 1e-6 : 1e-3);
  const floor = opts.floor ?? 1e-3;
  const wrt = opts.wrt ?? inputs.map((t, i) => (isFloat(t.dtype) ? i : -1)).filter((i) => i >= 0);
  for (const i of wrt) {
    const t = inputs[i];
    if (t === undefined) throw new Error(`gradcheck: no input ${i}`);
    if (t.dtype !== "float64") throw new Error(`gradcheck: input ${i} is ${t.dtype}; finite differences need float64`);
  }
  const { value, grads } = valueAndGrad(f)(...inputs);
  const analytic = wrt.map((i) => {
    const g = grads[i]!;
    const t = inputs[i]!;
    if (g.shape.join() !== t.shape.join()) {
      throw new Error(`gradcheck: gradient of input ${i} has shape [${g.shape.join(",")}], input has [${t.shape.join(",")}]`);
    }
    return Float64Array.from(g.data);
  });
  const evalAt = (which: number, index: number, delta: number): number => {
    const args = inputs.map((t, j) => {
      if (j !== which) return t;
      const d = Float64Array.from(t.data);
      d[index] = d[index]! + delta;
      return new Tensor(d, t.shape, t.dtype);
    });
    return scalar(f(...args));
  };
  const numeric = wrt.map((i) => {
    const n = new Float64Array(inputs[i]!.size);
    for (let e = 0; e < n.length; e++) {
      n[e] =
        stencil === 2
          ? (evalAt(i, e, h) - evalAt(i, e, -h)) / (2 * h)
          : (-evalAt(i, e, 2 * h) + 8 * evalAt(i, e, h) - 8 * evalAt(i, e, -h) + evalAt(i, e, -2 * h)) / (12 * h);
    }
    return n;
  });
  let maxRelErr = 0;
  let maxAbsErr = 0;
  let worst: GradcheckResult["worst"];
  let checked = 0;
  wrt.forEach((input, w) => {
    const a = analytic[w]!;
    const n = numeric[w]!;
    for (let e = 0; e < a.length; e++) {
      checked++;
      const abs = Math.abs(a[e]! - n[e]!);
      const rel = Number.isNaN(abs) ? Infinity : abs / Math.max(Math.abs(a[e]!), Math.abs(n[e]!), floor);
      maxAbsErr = Math.max(maxAbsErr, Number.isNaN(abs) ? Infinity : abs);
      if (worst === undefined || rel > maxRelErr) {
        worst = { input, index: e, analytic: a[e]!, numeric: n[e]! };
        maxRelErr = rel;
      }
    }
  });
  return { value: scalar(value), maxRelErr, maxAbsErr, worst, analytic, numeric, checked };
}

/** gradcheck, throwing a readable error when the max relative error exceeds `tol` (default 1e-6). */
export function assertGradcheck(
  f: (...xs: Tensor[]) => Tensor,
  inputs: readonly Tensor[],
  opts: GradcheckOptions & { tol?: number } = {},
): GradcheckResult {
  const r = gradcheck(f, inputs, opts);
  const tol = opts.tol ?? 1e-6;
  if (!(r.maxRelErr <= tol)) {
    const w = r.worst!;
    throw new Error(
      `gradcheck failed: max rel err ${r.maxRelErr.toExponential(3)} > ${tol} at input ${w.input}[${w.index}]: ` +
        `reverse mode ${w.analytic}, finite difference ${w.numeric}`,
    );
  }
  return r;
}

/** <y, w>: turns a tensor-valued function into a scalar one with a fixed random projection. */
export function project(y: Tensor, w: Tensor): Tensor {
  return sum(mul(y, w));
}
