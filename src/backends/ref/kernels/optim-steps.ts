// The optimizer updates in place, every operation rounded to float32 in the documented order (prims/optim-steps.ts):
// the spec the native kernels match bit for bit.
import type { TypedArray } from "../../../core/dtype.js";
import type { Tensor } from "../../../core/tensor.js";
import type { AdamwStepParams, SgdStepParams } from "../../../prims/optim-steps.js";

const f = Math.fround;

export function adamwStep(ins: readonly Tensor[], s: AdamwStepParams): TypedArray[] {
  const [p, g, m, v] = ins.map((t) => t.data as Float32Array) as [Float32Array, Float32Array, Float32Array, Float32Array];
  const [lr, b1, omb1, b2, omb2, bc1, bc2, eps, wd] = [s.lr, s.b1, s.omb1, s.b2, s.omb2, s.bc1, s.bc2, s.eps, s.weightDecay].map(
    f,
  ) as number[] as [number, number, number, number, number, number, number, number, number];
  for (let i = 0; i < p.length; i++) {
    const gi = g[i]!;
    const mi = f(f(b1 * m[i]!) + f(omb1 * gi));
    const vi = f(f(b2 * v[i]!) + f(omb2 * f(gi * gi)));
    m[i] = mi;
    v[i] = vi;
    const u = f(f(f(mi / bc1) / f(f(Math.sqrt(f(vi / bc2))) + eps)) + f(wd * p[i]!));
    p[i] = f(p[i]! - f(lr * u));
  }
  return [p, m, v];
}

export function sgdStep(ins: readonly Tensor[], s: SgdStepParams): TypedArray[] {
  const [p, g] = [ins[0]!.data as Float32Array, ins[1]!.data as Float32Array];
  const trace = s.hasTrace ? (ins[2]!.data as Float32Array) : null;
  const lr = f(s.lr);
  const mu = f(s.momentum);
  for (let i = 0; i < p.length; i++) {
    let d = g[i]!;
    if (trace !== null) {
      d = f(f(mu * trace[i]!) + d);
      trace[i] = d;
    }
    p[i] = f(p[i]! - f(lr * d));
  }
  return trace === null ? [p] : [p, trace];
}
