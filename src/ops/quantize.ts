// Quantized matmuls (QUANTIZATION.md): each quantized operand is abs-max quantized over its contracting axes (the
// Quantize primitive), the integer product is accumulated exactly (int32 operands: the matmul primitives accumulate
// int32 exactly), then multiplied by s_lhs·s_rhs, which the same matmul computes from the scales (their contracting
// axes have size 1). A side without quantization stays float (weight-only: rhs only). Gradients are straight-through:
// those of the float matmul of the unquantized operands, or (intmp: `dequantizedRhsGrad`) with the rhs as the forward
// quantized it in the input-gradient product.
import type { DType } from "../core/dtype.js";
import { DTypeError, MoeError, ShapeError, UnsupportedError } from "../core/errors.js";
import { full, Tensor } from "../core/tensor.js";
import { positionOf } from "../core/shape.js";
import { bind, bind1 } from "../autodiff/bind.js";
import { isRecording } from "../autodiff/graph.js";
import { customVjp } from "../autodiff/custom-vjp.js";
import { Prim } from "../prims/prims.js";
import type { QuantFlavour } from "../prims/quantize.js";
import { cast, mul } from "./elementwise.js";
import { einsum, einsumLabels } from "./matmul.js";
import { broadcastTo, reshape } from "./movement.js";
import { recycle } from "../core/pool.js";
import { gmm, tgmm } from "./segment.js";

export type { QuantFlavour };

/** How one matmul operand is quantized: its bits and its quantizer. */
export interface OperandQuant {
  bits: number;
  flavour: QuantFlavour;
}

/**
 * AQT's quantized backward (MaxText int8): each gradient product quantizes both its operands to `bits` over its own
 * contracting axes, the cotangent with stochastic rounding (noise uniform in [−0.5, 0.5), drawn by `noise` for
 * "dlhs" and "drhs"), the other operand (the forward operand, unquantized) deterministically.
 */
export interface GradQuant {
  bits: number;
  noise: (shape: readonly number[], product: "dlhs" | "drhs") => Tensor;
  /** quantize the weight-gradient product too (MaxText: quantization_local_shard_count ≠ 0); else float */
  drhs: boolean;
}

/** A matmul's quantization; an absent side stays float. Gradients: straight-through, or quantized with `grad`. */
export interface DotQuant {
  lhs?: OperandQuant | undefined;
  rhs?: OperandQuant | undefined;
  grad?: GradQuant | undefined;
  /**
   * Without `grad`: the input-gradient product (dlhs) takes the rhs dequantized as the forward quantized it, the
   * weight gradient stays the float product (QUANTIZATION.md: intmp's "float gradients, computed with the
   * dequantized weights"); else both are the float products of the unquantized operands.
   */
  dequantizedRhsGrad?: boolean;
}

/** x as `q` quantizes it over `axes`, dequantized (values × scales, in x's dtype): the operand the forward multiplied. */
function dequantized(x: Tensor, axes: readonly number[], q: OperandQuant): Tensor {
  const dt: DType = x.dtype === "float64" ? "float64" : "float32";
  const [v, s] = quantize(x, axes, q);
  return cast(mul(cast(v, dt), cast(s, dt)), x.dtype);
}

/** A grouped matmul's quantization: rhs [G,k,n] scales per (group, column), or per column over all groups (qwix's gmm rule). */
export interface GmmQuant extends DotQuant {
  rhsSharedOverGroups?: boolean;
}

/** Largest contraction whose int32 sum of 8-bit products cannot overflow: K·128² < 2^31. */
const MAX_EXACT_K = Math.floor((2 ** 31 - 1) / 128 ** 2);

/**
 * Abs-max quantization of `x` with one scale per slice over `axes`: [int32 values, scales (x's shape, axes set to 1)].
 * `noise` (x's shape, in [−0.5, 0.5)) is added before rounding: stochastic rounding.
 */
export function quantize(x: Tensor, axes: readonly number[], q: OperandQuant, noise?: Tensor, what?: string): [Tensor, Tensor] {
  try {
    const [v, s] = bind(Prim.Quantize, noise === undefined ? [x] : [x, noise], { bits: q.bits, axes, flavour: q.flavour });
    return [v!, s!];
  } catch (e) {
    // the kernels name a flat element of "the input": say which operand of which product, and where in it
    const m =
      what === undefined || !(e instanceof MoeError) ? null : /^\[quantize\] element (\d+) of the input is (\S+): (.*)$/.exec(e.message);
    if (m === null) throw e;
    const at = positionOf(x.shape, Number(m[1]));
    throw new MoeError(`[quantize] ${what} [${x.shape.join(",")}] is ${m[2]} at [${at.join(",")}]: ${m[3]}`);
  }
}

interface Side {
  v: Tensor;
  s: Tensor;
  int: boolean;
  /** v was quantized for this product alone (not a served weight's kept side) */
  own?: boolean;
  /** v in the product's float dtype, made on first use (kept with a served weight's side) */
  vf?: Tensor;
  /** a served [k, n] weight's int8 codes [1, k, n] and scales [1, 1, n] for QuantizedGmm (servedRhsProduct) */
  gmm?: { codes: Tensor; scales: Tensor };
}

/** Quantized sides of weights that are never written again (servedWeight), by their quantization. */
const servedSides = new WeakMap<Tensor, Map<string, Side>>();

/**
 * Marks `w` as read-only from now on: each quantized matmul then quantizes it once per quantization and reuses that
 * (serve mode's gate, whose weight-only quantization would otherwise run on every call). Writing `w` afterwards
 * leaves the stale quantization in use: pass a tensor nothing else holds.
 */
export function servedWeight(w: Tensor): Tensor {
  if (!servedSides.has(w)) servedSides.set(w, new Map());
  return w;
}

const servedCasts = new WeakMap<Tensor, Map<DType, Tensor>>();

/**
 * cast(w, dtype), made once and kept with a servedWeight (and itself served): a bfloat16 layer's served gate, cast
 * and then quantized, would otherwise do both on every call.
 */
export function castServed(w: Tensor, dtype: DType): Tensor {
  if (w.dtype === dtype || !servedSides.has(w) || w.node !== undefined) return cast(w, dtype);
  let m = servedCasts.get(w);
  if (m === undefined) servedCasts.set(w, (m = new Map()));
  let c = m.get(dtype);
  if (c === undefined) m.set(dtype, (c = servedWeight(cast(w, dtype))));
  return c;
}

/** An operand ready for the product: its integer values and scales, or itself (in `dt`) with unit scales. */
function side(x: Tensor, axes: readonly number[], q: OperandQuant | undefined, dt: DType, noise?: Tensor, what?: string): Side {
  const memo = q !== undefined && noise === undefined ? servedSides.get(x) : undefined;
  if (memo !== undefined) {
    const key = `${q!.bits}/${q!.flavour}/${axes.join(",")}/${dt}`;
    let hit = memo.get(key);
    if (hit === undefined) {
      const [v, s] = quantize(x, axes, q!, undefined, what);
      hit = { v, s: cast(s, dt), int: true };
      memo.set(key, hit);
    }
    return hit;
  }
  if (q === undefined)
    return {
      v: cast(x, dt),
      s: full(
        x.shape.map((d, i) => (axes.includes(i) ? 1 : d)),
        1,
        dt,
      ),
      int: false,
    };
  const [v, s] = quantize(x, axes, q, noise, what);
  return { v, s: cast(s, dt), int: true, own: true };
}

/**
 * mm(q_lhs, q_rhs) (exact int32 when both are integers) · mm(s_lhs, s_rhs), in `dt`; `given`: mm(s_lhs, s_rhs) known
 * (a view the product does not own).
 */
function rescaled(l: Side, r: Side, k: number, mm: (a: Tensor, b: Tensor) => Tensor, dt: DType, given?: Tensor): Tensor {
  if (l.int && r.int && k > MAX_EXACT_K)
    throw new UnsupportedError(`[quantized matmul] contraction of ${k} > ${MAX_EXACT_K} overflows int32`);
  const f = (x: Side): Tensor => (x.int ? (x.vf ??= cast(x.v, dt)) : x.v);
  const ints = l.int && r.int ? mm(l.v, r.v) : undefined;
  const prod = ints !== undefined ? cast(ints, dt) : mm(f(l), f(r));
  const scales = given ?? mm(l.s, r.s);
  const out = mul(prod, scales);
  // what only this product holds goes back to the storage pool now rather than at some later GC: the next call's
  // large outputs then land in pages already mapped (the int8 gate's 16 MB of values at the bench shape)
  recycle(
    ints,
    prod,
    given === undefined ? scales : undefined,
    l.own === true ? [l.v, l.vf] : undefined,
    r.own === true ? [r.v, r.vf] : undefined,
  );
  return out;
}

/** The float dtype the product and its scales are computed in: float64 for float64 operands, else float32. */
function computeDtype(a: Tensor, b: Tensor, where: string): DType {
  if (a.dtype !== b.dtype) throw new DTypeError(`[${where}] dtypes ${a.dtype} != ${b.dtype}`);
  return a.dtype === "float64" ? "float64" : "float32";
}

const isQuantized = (q: DotQuant | undefined): q is DotQuant => q !== undefined && (q.lhs !== undefined || q.rhs !== undefined);

/** The quantized product of two operands of one dtype (no gradient), each side over its contracting labels. */
function einsumProduct(spec: string, a: Tensor, b: Tensor, q: DotQuant, noise: { lhs?: Tensor; rhs?: Tensor } = {}): Tensor {
  const { ia, ib, io } = einsumLabels(spec);
  const contracted = ia.filter((l) => ib.includes(l) && !io.includes(l));
  const dt = computeDtype(a, b, "quantized einsum");
  const k = contracted.reduce((n, l) => n * a.shape[ia.indexOf(l)]!, 1);
  const l = side(
    a,
    contracted.map((c) => ia.indexOf(c)),
    q.lhs,
    dt,
    noise.lhs,
    `the lhs of ${spec}`,
  );
  const r = side(
    b,
    contracted.map((c) => ib.indexOf(c)),
    q.rhs,
    dt,
    noise.rhs,
    `the rhs of ${spec}`,
  );
  return cast(
    rescaled(l, r, k, (u, v) => einsum(spec, u, v), dt, l.int !== r.int ? oneSided(l.int ? [l.s, ia] : [r.s, ib], io) : undefined),
    a.dtype,
  );
}

/**
 * mm(ones, s) of a product quantized on one side: that side's scales s (1 along its contracted labels) as the output
 * holds them, size 1 along the other side's labels (1 · s is s exactly); undefined where its labels come in another
 * order than the output's.
 */
function oneSided([s, labels]: [Tensor, string[]], io: string[]): Tensor | undefined {
  const kept = io.filter((l) => labels.includes(l));
  if (kept.join() !== labels.filter((l) => io.includes(l)).join()) return undefined;
  return reshape(
    s,
    io.map((l) => (labels.includes(l) ? s.shape[labels.indexOf(l)]! : 1)),
  );
}

/**
 * x · W of a float32 x (…, k) and a served [k, n] weight quantized weight-only to int8 codes (the weight-only gate),
 * neither of them differentiated: one QuantizedGmm over the weight's codes and scales kept with it, fl(fl(Σ x·c) · s), the bits
 * of einsumProduct's einsum then scale product (each an fp32 chain over k ascending, one rounding per product).
 * bfloat16 x and W (a bfloat16 layer's gate): the same in float32, then rounded, as einsumProduct computes them.
 * undefined where that does not apply.
 */
function servedRhsProduct(ia: string[], ib: string[], io: string[], a: Tensor, b: Tensor, q: DotQuant): Tensor | undefined {
  const r = q.rhs;
  if (
    (isRecording() && (a.node !== undefined || b.node !== undefined)) ||
    q.lhs !== undefined ||
    r === undefined ||
    r.bits > 8 ||
    a.dtype !== b.dtype ||
    (a.dtype !== "float32" && a.dtype !== "bfloat16")
  )
    return undefined;
  if (!servedSides.has(b) || ib.length !== 2 || ib[0] !== ia[ia.length - 1] || io.join() !== [...ia.slice(0, -1), ib[1]].join())
    return undefined;
  const side_ = side(b, [0], r, "float32");
  const [k, n] = b.shape as [number, number];
  side_.gmm ??= {
    codes: new Tensor(Int8Array.from(side_.v.data as Int32Array), [1, k, n], "int8"),
    scales: reshape(side_.s, [1, 1, n]),
  };
  const m = a.size / k;
  const gs = new Tensor(Int32Array.of(m), [1], "int32");
  // bfloat16 operands: the product and its scaling in float32, then rounded (einsumProduct's computeDtype and cast)
  const rows = reshape(cast(a, "float32"), [m, k]);
  const out = bind1(Prim.QuantizedGmm, [rows, side_.gmm.codes, side_.gmm.scales, gs], { format: "int8", columns: n });
  return cast(reshape(out, [...a.shape.slice(0, -1), n]), a.dtype);
}

/**
 * einsum(spec, a, b) with each quantized operand quantized over its contracting labels (one scale per index of its
 * other labels). Without quantization, plain einsum.
 *
 * @example quantizedEinsum("BSM,EMH->BSEH", x, wi0, { lhs: { bits: 8, flavour: "aqt" }, rhs: { bits: 8, flavour: "aqt" } })
 */
export function quantizedEinsum(spec: string, a: Tensor, b: Tensor, q: DotQuant | undefined): Tensor {
  if (!isQuantized(q)) return einsum(spec, a, b);
  const { ia, ib, io } = einsumLabels(spec.replace(/ /g, ""));
  const summed = [...ia.filter((l) => !ib.includes(l)), ...ib.filter((l) => !ia.includes(l))].filter((l) => !io.includes(l));
  if (summed.length > 0) throw new ShapeError(`[quantized einsum] "${spec}" sums label ${summed[0]} out of one operand: not supported`);
  const served = servedRhsProduct(ia, ib, io, a, b, q);
  if (served !== undefined) return served;
  const [A, B, O] = [ia.join(""), ib.join(""), io.join("")];
  const rhsAxes = ia.filter((l) => ib.includes(l) && !io.includes(l)).map((l) => ib.indexOf(l));
  const f = customVjp(
    (x: Tensor, y: Tensor) => ({ out: einsumProduct(`${A},${B}->${O}`, x, y, q), res: [x, y] }),
    ([x, y], ct) => {
      const c = cast(ct, x!.dtype);
      const g = q.grad;
      if (g === undefined) {
        const yq = q.dequantizedRhsGrad === true && q.rhs !== undefined ? dequantized(y!, rhsAxes, q.rhs) : y!;
        return [einsum(`${O},${B}->${A}`, c, yq), einsum(`${A},${O}->${B}`, x!, c)];
      }
      const both: DotQuant = { lhs: { bits: g.bits, flavour: "aqt" }, rhs: { bits: g.bits, flavour: "aqt" } };
      const dlhs = einsumProduct(`${O},${B}->${A}`, c, y!, both, { lhs: g.noise(c.shape, "dlhs") });
      const drhs = g.drhs
        ? einsumProduct(`${A},${O}->${B}`, x!, c, both, { rhs: g.noise(c.shape, "drhs") })
        : einsum(`${A},${O}->${B}`, x!, c);
      return [dlhs, drhs];
    },
  );
  return f(a, b);
}

/**
 * gmm(lhs [m,k], rhs [G,k,n], groupSizes) with lhs quantized per row over k, rhs per (group, column) over k or, with
 * rhsSharedOverGroups, per column over groups and k. Without quantization, plain gmm.
 */
export function quantizedGmm(lhs: Tensor, rhs: Tensor, groupSizes: Tensor, q: GmmQuant | undefined): Tensor {
  if (!isQuantized(q)) return gmm(lhs, rhs, groupSizes);
  const dt = computeDtype(lhs, rhs, "quantized gmm");
  const rhsAxes = q.rhsSharedOverGroups === true ? [0, 1] : [1];
  const f = customVjp(
    (x: Tensor, w: Tensor, gs: Tensor) => {
      const l = side(x, [1], q.lhs, dt, undefined, "the rows of a grouped matmul");
      const r = side(w, rhsAxes, q.rhs, dt, undefined, "the weights of a grouped matmul");
      const rs = { ...r, s: broadcastTo(r.s, [w.shape[0]!, 1, w.shape[2]!]) };
      return {
        out: cast(
          rescaled(l, rs, x.shape[1]!, (u, v) => gmm(u, v, gs), dt),
          x.dtype,
        ),
        res: [x, w, gs],
      };
    },
    // dlhs = gmm(ct, rhsᵀ) (the rhs dequantized where dequantizedRhsGrad), drhs = tgmm(lhs, ct), as the float gmm
    ([x, w, gs], ct) => {
      const c = cast(ct, x!.dtype);
      const wq = q.dequantizedRhsGrad === true && q.rhs !== undefined ? dequantized(w!, rhsAxes, q.rhs) : w!;
      return [gmm(c, wq, gs!, true), tgmm(x!, c, gs!), undefined];
    },
  );
  return f(lhs, rhs, groupSizes);
}
