// The fused expert FFN (prims/expert-ffn.ts) in plain loops. The forward rounds where the op composition
// gatherSorted → gmm (+bias) → GLU → gmm (+bias) → unpermute in the layer's dtype rounds (each matmul and the
// combine accumulate in float64, one result per op stored as float32, then rounded to the dtype), so it gives the
// composition's bits; the backward accumulates in float64.
import { ShapeError } from "../../../core/errors.js";
import type { Tensor } from "../../../core/tensor.js";
import {
  checkExpertFfn,
  expertFfnBwdOutputs,
  expertFfnInputs,
  type ExpertFfnBwdParams,
  type ExpertFfnParams,
  type FfnDims,
  type FfnGradName,
} from "../../../prims/expert-ffn.js";
import { roundBf16InPlace, toBf16, type TypedArray } from "../../../core/dtype.js";
import { gluGrad, gluRounded } from "./glu.js";

/** Per sorted row: its token, its expert (−1 past the groups) and, per routed choice, its row. */
export interface Routing {
  token: Int32Array;
  expert: Int32Array;
  rowOf: Int32Array;
  /** rows of expert e: [offsets[e], offsets[e + 1]) */
  offsets: Int32Array;
}

export function routing(order: Tensor, groupSizes: Tensor, d: FfnDims, where: string): Routing {
  const { R, K, E } = d;
  const rowOf = new Int32Array(R).fill(-1);
  const token = new Int32Array(R);
  for (let r = 0; r < R; r++) {
    const c = order.data[r]!;
    if (!(c >= 0 && c < R) || rowOf[c] !== -1) throw new ShapeError(`[${where}] order is not a permutation of [0, ${R}): ${c} at row ${r}`);
    rowOf[c] = r;
    token[r] = Math.floor(c / K);
  }
  const expert = new Int32Array(R).fill(-1);
  const offsets = new Int32Array(E + 1);
  for (let e = 0; e < E; e++) {
    const n = groupSizes.data[e]!;
    if (n < 0) throw new ShapeError(`[${where}] groupSizes[${e}] = ${n} is negative`);
    if (offsets[e]! + n > R) throw new ShapeError(`[${where}] sum(groupSizes) > rows (${R})`);
    offsets[e + 1] = offsets[e]! + n;
    expert.fill(e, offsets[e], offsets[e + 1]);
  }
  return { token, expert, rowOf, offsets };
}

export function expertFfn(ins: readonly Tensor[], p: ExpertFfnParams): TypedArray[] {
  const d = checkExpertFfn("expert_ffn", ins, p, 0);
  const { D, H, R } = d;
  const a = expertFfnInputs(ins, p);
  const { token, expert, rowOf } = routing(a.order, a.groupSizes, d, "expert_ffn");
  const rnd = p.dtype === "bfloat16" ? toBf16 : Math.fround;
  // x, the weights and the biases as the composition's casts to the layer's dtype leave them
  const read = (t: Tensor | undefined): TypedArray => {
    if (t === undefined) return new Float32Array(0);
    if (t.dtype === p.dtype) return t.data;
    const copy = Float32Array.from(t.data);
    if (p.dtype === "bfloat16") roundBf16InPlace(copy);
    return copy;
  };
  const [x, wi0, wi1, wo, b0, b1, bo] = [read(a.x), read(a.wi0), read(a.wi1), read(a.wo), read(a.b0), read(a.b1), read(a.bo)];
  const glu = gluRounded(p, rnd);
  const h0 = new Float32Array(R * H);
  const h1 = new Float32Array(R * H);
  const act = new Float32Array(R * H);
  const o = new Float32Array(R * D);
  for (let r = 0; r < R; r++) {
    const e = expert[r]!;
    if (e < 0) continue;
    const xr = token[r]! * D;
    for (let j = 0; j < H; j++) {
      let s0 = 0;
      let s1 = 0;
      for (let q = 0; q < D; q++) {
        s0 += x[xr + q]! * wi0[(e * D + q) * H + j]!;
        s1 += x[xr + q]! * wi1[(e * D + q) * H + j]!;
      }
      let v0 = rnd(s0);
      let v1 = rnd(s1);
      if (p.hasBias) {
        v0 = rnd(v0 + b0[e * H + j]!);
        v1 = rnd(v1 + b1[e * H + j]!);
      }
      h0[r * H + j] = v0;
      h1[r * H + j] = v1;
      act[r * H + j] = glu(v0, v1);
    }
    for (let q = 0; q < D; q++) {
      let s = 0;
      for (let j = 0; j < H; j++) s += act[r * H + j]! * wo[(e * H + j) * D + q]!;
      o[r * D + q] = p.hasBias ? rnd(rnd(s) + bo[e * D + q]!) : rnd(s);
    }
  }
  const y = combineRows(o, rowOf, p.hasCombineWeights ? a.w!.data : undefined, d);
  return p.residuals ? [y, act, h0, h1, o] : [y];
}

/** y[t] = Σ_k w[t,k] · o[row of choice t·K + k] (w absent: 1), accumulated in float64, stored as float32. */
export function combineRows(o: Float32Array, rowOf: Int32Array, w: TypedArray | undefined, d: FfnDims): Float32Array {
  const { T, D, K } = d;
  const y = new Float32Array(T * D);
  for (let t = 0; t < T; t++) {
    for (let q = 0; q < D; q++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += (w !== undefined ? w[t * K + k]! : 1) * o[rowOf[t * K + k]! * D + q]!;
      y[t * D + q] = s;
    }
  }
  return y;
}

export function expertFfnBwd(ins: readonly Tensor[], p: ExpertFfnBwdParams): TypedArray[] {
  const d = checkExpertFfn("expert_ffn_bwd", ins.slice(0, -4), p, 1);
  const { T, D, K, E, H, R } = d;
  const a = expertFfnInputs(ins.slice(1), p);
  const [dy, act, h0, h1, o] = [ins[0]!.data, ...ins.slice(-4).map((t) => t.data)] as [
    TypedArray,
    TypedArray,
    TypedArray,
    TypedArray,
    TypedArray,
  ];
  const { token, expert, rowOf, offsets } = routing(a.order, a.groupSizes, d, "expert_ffn_bwd");
  const [x, wi0, wi1, wo] = [a.x.data, a.wi0.data, a.wi1.data, a.wo.data];
  const weight = (t: number, k: number): number => (p.hasCombineWeights ? a.w!.data[t * K + k]! : 1);
  const dglu = gluGrad(p);

  const dw = new Float64Array(T * K);
  const dO = new Float64Array(R * D);
  for (let t = 0; t < T; t++) {
    for (let k = 0; k < K; k++) {
      const r = rowOf[t * K + k]!;
      if (expert[r]! < 0) continue;
      let s = 0;
      for (let q = 0; q < D; q++) {
        s += dy[t * D + q]! * o[r * D + q]!;
        // rounded as the combine's own VJP rounds it, so that expert parallelism gives the same bits
        dO[r * D + q] = Math.fround(weight(t, k) * dy[t * D + q]!);
      }
      dw[t * K + k] = s;
    }
  }
  const dh0 = new Float64Array(R * H);
  const dh1 = new Float64Array(R * H);
  for (let r = 0; r < R; r++) {
    const e = expert[r]!;
    if (e < 0) continue;
    for (let j = 0; j < H; j++) {
      let s = 0;
      for (let q = 0; q < D; q++) s += dO[r * D + q]! * wo[(e * H + j) * D + q]!;
      const [g0, g1] = dglu(h0[r * H + j]!, h1[r * H + j]!);
      dh0[r * H + j] = s * g0;
      dh1[r * H + j] = s * g1;
    }
  }
  const dx = new Float32Array(T * D);
  for (let t = 0; t < T; t++) {
    for (let q = 0; q < D; q++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const r = rowOf[t * K + k]!;
        const e = expert[r]!;
        if (e < 0) continue;
        for (let j = 0; j < H; j++) s += dh0[r * H + j]! * wi0[(e * D + q) * H + j]! + dh1[r * H + j]! * wi1[(e * D + q) * H + j]!;
      }
      dx[t * D + q] = s;
    }
  }
  // per-expert sums over its rows: Σ_r lhs[r, i] · rhs[r, j] into [E, n, m], or Σ_r rhs[r, j] into [E, m]
  const perExpert = (n: number, m: number, lhs: (r: number, i: number) => number, rhs: ArrayLike<number>): Float32Array => {
    const out = new Float32Array(E * n * m);
    for (let e = 0; e < E; e++) {
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < m; j++) {
          let s = 0;
          for (let r = offsets[e]!; r < offsets[e + 1]!; r++) s += lhs(r, i) * rhs[r * m + j]!;
          out[(e * n + i) * m + j] = s;
        }
      }
    }
    return out;
  };
  const xRow = (r: number, i: number): number => x[token[r]! * D + i]!;
  const one = (): number => 1;
  const grad: Record<FfnGradName, () => TypedArray> = {
    x: () => dx,
    w: () => Float32Array.from(dw),
    wi0: () => perExpert(D, H, xRow, dh0),
    wi1: () => perExpert(D, H, xRow, dh1),
    wo: () => perExpert(H, D, (r, i) => act[r * H + i]!, dO),
    b0: () => perExpert(1, H, one, dh0),
    b1: () => perExpert(1, H, one, dh1),
    bo: () => perExpert(1, D, one, dO),
  };
  return expertFfnBwdOutputs(p).map((n) => grad[n]());
}
