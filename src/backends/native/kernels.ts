// The native backend's kernels, one entry per primitive it implements; supports() is false for every other
// primitive and input, and the dispatcher runs the reference kernel instead.
import { zeroed, type TypedArray } from "../../core/dtype.js";
import { DTypeError, MoeError, ShapeError, UnsupportedError } from "../../core/errors.js";
import { normalizeAxis, shapesEqual, size, type Aval } from "../../core/shape.js";
import type { Tensor } from "../../core/tensor.js";
import { Prim, type Params } from "../../prims/prims.js";
import type { NativeBinding } from "./binding.js";
import { expertFfnBwdNative, expertFfnNative, supportsExpertFfn, supportsExpertFfnBwd } from "./expert-ffn.js";
import {
  bincountNative,
  broadcastNative,
  gatherNative,
  byteBacked,
  iotaNative,
  is4Byte,
  MAX_I8_K,
  nativeWeightFormat,
  reduceLayout,
  reduceNative,
  scatterAddNative,
  transposeNative,
  writtenInFull,
} from "./simple-kernels.js";

const isF32 = (t: Tensor | undefined, rank: number): boolean => t?.dtype === "float32" && t.shape.length === rank && t.data instanceof Float32Array;
// bfloat16 operands held as float32 values multiply exactly in fp32; the dispatcher rounds the bfloat16 result
const isF32Values = (t: Tensor | undefined, rank: number): boolean =>
  (t?.dtype === "float32" || t?.dtype === "bfloat16") && t.shape.length === rank && t.data instanceof Float32Array;
const sameDtype = (ins: readonly Tensor[]): boolean => ins[0]!.dtype === ins[1]!.dtype;
const isI32 = (t: Tensor | undefined, rank: number): boolean => t?.dtype === "int32" && t.shape.length === rank && t.data instanceof Int32Array;
// Storage the native Quantize wrote with bits <= 8: in int8 range by construction, so not scanned again.
const quantizedInt8 = new WeakSet<Int32Array>();
const fitsI8 = (b: NativeBinding, x: Int32Array): boolean => quantizedInt8.has(x) || b.i32FitsI8(x);
// int32 operands whose values fit in int8 (the Quantize primitive's output): the int8 products
const int8Operands = (b: NativeBinding, lhs: Tensor, rhs: Tensor, k: number): boolean =>
  k <= MAX_I8_K && fitsI8(b, lhs.data as Int32Array) && fitsI8(b, rhs.data as Int32Array);

/**
 * QuantizedGmm's operands as the native kernel takes them: a float32 lhs (weight-only), or an int32 lhs in int8 range
 * with its float32 row scales (int8 serve mode); codes and scales held in their storage arrays.
 */
function quantizedGmmOperands(b: NativeBinding, ins: readonly Tensor[]): boolean {
  const [lhs, codes, scales, gs, ls] = ins;
  const scalesOk = scales?.data instanceof Float32Array || (scales?.dtype === "uint8" && scales.data instanceof Uint8Array);
  if (!byteBacked(codes) || !scalesOk || !isI32Vector(gs) || lhs === undefined || lhs.shape[1]! > MAX_I8_K) return false;
  if (isF32(lhs, 2)) return ls === undefined;
  return isI32(lhs, 2) && isF32(ls, 2) && fitsI8(b, lhs.data as Int32Array);
}

/** The quantized slice as [P, C, Q] when `axes` are one run of consecutive axes (the native kernel's layout). */
function quantizeLayout(shape: readonly number[], axes: readonly number[]): [number, number, number] | undefined {
  const ax = axes.map((a) => normalizeAxis(a, shape.length, "quantize")).sort((x, y) => x - y);
  if (ax.length === 0 || ax.some((a, i) => a !== ax[0]! + i)) return undefined;
  const prod = (from: number, to: number): number => shape.slice(from, to).reduce((x, y) => x * y, 1);
  return [prod(0, ax[0]!), prod(ax[0]!, ax[ax.length - 1]! + 1), prod(ax[ax.length - 1]! + 1, shape.length)];
}
const isI32Vector = (t: Tensor | undefined): boolean => t?.dtype === "int32" && t.shape.length === 1;
const allF32 = (ins: readonly Tensor[]): boolean => ins.every((t) => t.dtype === "float32" && t.data instanceof Float32Array);
const allI32 = (ins: readonly Tensor[]): boolean => ins.every((t) => t.dtype === "int32" && t.data instanceof Int32Array);

/**
 * Elementwise operands from this many elements on run natively (below, the TypeScript loop costs less than the
 * call). Bit-identical to the ref kernels, exp and sigmoid within an ulp (moe-kernels.h).
 */
export const MIN_NATIVE_ELEMENTWISE = 256;
const BINARY_OPS: Readonly<Record<string, number>> = { [Prim.Add]: 0, [Prim.Sub]: 1, [Prim.Mul]: 2, [Prim.Div]: 3 };
const UNARY_OPS: Readonly<Record<string, number>> = { [Prim.Neg]: 0, [Prim.Exp]: 1, [Prim.Sigmoid]: 2 };

export function supports<P extends Prim>(b: NativeBinding, prim: P, ins: readonly Tensor[], params: Params<P>): boolean {
  switch (prim) {
    case Prim.Gmm:
      if (ins.length === 3 && isI32(ins[0], 2) && isI32(ins[1], 3) && isI32Vector(ins[2]))
        return int8Operands(b, ins[0]!, ins[1]!, ins[0]!.shape[1]!);
      return ins.length === 3 && isF32Values(ins[0], 2) && isF32Values(ins[1], 3) && sameDtype(ins) && isI32Vector(ins[2]);
    case Prim.Tgmm:
      return ins.length === 3 && isF32(ins[0], 2) && isF32(ins[1], 2) && isI32Vector(ins[2]);
    case Prim.BatchMatmul:
      if (ins.length === 2 && isI32(ins[0], 3) && isI32(ins[1], 3)) return int8Operands(b, ins[0]!, ins[1]!, ins[0]!.shape[2]!);
      return ins.length === 2 && isF32Values(ins[0], 3) && isF32Values(ins[1], 3) && sameDtype(ins);
    case Prim.Quantize: {
      const [x, noise] = [ins[0], ins[1]];
      const f32Storage = (t: Tensor | undefined): boolean => t !== undefined && t.dtype !== "float64" && t.data instanceof Float32Array;
      const q = params as Params<Prim.Quantize>;
      return f32Storage(x) && (noise === undefined || f32Storage(noise)) && quantizeLayout(x!.shape, q.axes) !== undefined;
    }
    case Prim.QuantizedGmm:
      return quantizedGmmOperands(b, ins);
    case Prim.TopK:
      return ins.length === 1 && isF32Values(ins[0], ins[0]!.shape.length) && ins[0]!.shape.length >= 1;
    case Prim.Argsort:
      return ins.length === 1 && isI32Vector(ins[0]);
    case Prim.Add:
    case Prim.Sub:
    case Prim.Mul:
    case Prim.Div: {
      // large operands only: below, the call costs more than the TypeScript loop
      const large = ins.length === 2 && ins[0]!.size >= MIN_NATIVE_ELEMENTWISE && shapesEqual(ins[0]!.shape, ins[1]!.shape);
      return large && (allF32(ins) || (prim !== Prim.Div && allI32(ins)));
    }
    case Prim.Neg:
    case Prim.Exp:
    case Prim.Sigmoid:
      return ins.length === 1 && allF32(ins) && ins[0]!.size >= MIN_NATIVE_ELEMENTWISE;
    case Prim.Cast: {
      const to = (params as Params<Prim.Cast>).dtype;
      // float32 <-> bfloat16 (Float32Array storage both): a copy; the dispatcher rounds a bfloat16 result
      const bf16ToF32 = to === "float32" && ins[0]?.dtype === "bfloat16" && ins[0].data instanceof Float32Array;
      const conversions = (to === "float32" && allI32(ins)) || (to === "int32" && allF32(ins)) || (to === "bfloat16" && allF32(ins)) || bf16ToF32;
      return ins.length === 1 && ins[0]!.size >= MIN_NATIVE_ELEMENTWISE && conversions;
    }
    case Prim.ReduceSum:
    case Prim.ReduceMax:
      return ins.length === 1 && allF32(ins) && reduceLayout(ins[0]!.shape, (params as Params<Prim.ReduceSum>).axes) !== undefined;
    case Prim.Softmax: {
      // along the last axis (or one whose inner axes are all 1)
      const x = ins[0]!;
      const axis = normalizeAxis((params as Params<Prim.Softmax>).axis, x.shape.length);
      return ins.length === 1 && allF32(ins) && size(x.shape.slice(axis + 1)) === 1;
    }
    case Prim.Reshape:
      return true;
    case Prim.Transpose:
    case Prim.BroadcastTo:
      return ins.length === 1 && is4Byte(ins[0]) && ins[0]!.shape.length <= 16;
    case Prim.Gather:
      return ins.length === 2 && is4Byte(ins[0]) && ins[1]!.data instanceof Int32Array;
    case Prim.ScatterAdd:
      return ins.length === 2 && allF32([ins[0]!]) && ins[1]!.data instanceof Int32Array;
    case Prim.Iota:
      return (params as Params<Prim.Iota>).dtype === "int32";
    case Prim.Bincount:
      return ins.length === 1 && allI32(ins);
    case Prim.ExpertFfn:
      return supportsExpertFfn(ins, params as Params<Prim.ExpertFfn>);
    case Prim.ExpertFfnBwd:
      return supportsExpertFfnBwd(ins, params as Params<Prim.ExpertFfnBwd>);
    case Prim.AdamwStep:
    case Prim.SgdStep:
      return allF32(ins);
    default:
      return false;
  }
}

function f32(t: Tensor, what: string): Float32Array {
  if (!(t.data instanceof Float32Array)) throw new DTypeError(`[native] ${what} must be held as float32, got ${t.dtype}`);
  return t.data;
}

function i32(t: Tensor, what: string): Int32Array {
  if (t.dtype !== "int32" || !(t.data instanceof Int32Array)) throw new DTypeError(`[native] ${what} must be int32, got ${t.dtype}`);
  return t.data;
}

/** Same checks and messages as the ref kernels: sizes >= 0 with sum <= rows. */
function checkGroups(gs: Int32Array, rows: number, where: string): void {
  let sum = 0;
  for (let g = 0; g < gs.length; g++) {
    const s = gs[g]!;
    if (s < 0) throw new ShapeError(`[${where}] groupSizes[${g}] = ${s} is negative`);
    sum += s;
  }
  if (sum > rows) throw new ShapeError(`[${where}] sum(groupSizes) (${sum}) > rows (${rows})`);
}

export function run<P extends Prim>(b: NativeBinding, prim: P, ins: readonly Tensor[], params: Params<P>, outs: readonly Aval[]): TypedArray[] {
  switch (prim) {
    case Prim.Gmm: {
      const [lhs, rhs, gs] = [ins[0]!, ins[1]!, ins[2]!];
      const [m, k] = lhs.shape as [number, number];
      const n = outs[0]!.shape[1]!;
      const sizes = i32(gs, "groupSizes");
      checkGroups(sizes, m, "gmm");
      if (lhs.dtype === "int32") {
        const out = zeroed(Int32Array, m * n);
        b.gmmI8(lhs.data as Int32Array, rhs.data as Int32Array, sizes, m, k, n, (params as Params<Prim.Gmm>).transposeRhs, out);
        return [out];
      }
      const out = writtenInFull("float32", m * n) as Float32Array; // rows past the groups are zeroed by the kernel
      b.gmm(f32(lhs, "lhs"), f32(rhs, "rhs"), sizes, m, k, n, (params as Params<Prim.Gmm>).transposeRhs, out);
      return [out];
    }
    case Prim.Tgmm: {
      const [lhs, rhs, gs] = [ins[0]!, ins[1]!, ins[2]!];
      const [m, k] = lhs.shape as [number, number];
      const n = rhs.shape[1]!;
      const sizes = i32(gs, "groupSizes");
      checkGroups(sizes, m, "tgmm");
      const out = zeroed(Float32Array, sizes.length * k * n);
      b.tgmm(f32(lhs, "lhs"), f32(rhs, "rhs"), sizes, m, k, n, out);
      return [out];
    }
    case Prim.BatchMatmul: {
      const [x, y] = [ins[0]!, ins[1]!];
      const [batch, m, k] = x.shape as [number, number, number];
      const n = y.shape[2]!;
      if (x.dtype === "int32") {
        // the batches as groups of m rows each
        const out = zeroed(Int32Array, batch * m * n);
        b.gmmI8(x.data as Int32Array, y.data as Int32Array, zeroed(Int32Array, batch).fill(m), batch * m, k, n, false, out);
        return [out];
      }
      const out = writtenInFull("float32", batch * m * n) as Float32Array;
      b.bmm(f32(x, "lhs"), f32(y, "rhs"), batch, m, k, n, out);
      return [out];
    }
    case Prim.QuantizedGmm: {
      const [lhs, codes, scales, gs, ls] = ins as [Tensor, Tensor, Tensor, Tensor, Tensor | undefined];
      const { format, columns: n } = params as Params<Prim.QuantizedGmm>;
      const [m, k] = lhs.shape as [number, number];
      const sizes = i32(gs, "groupSizes");
      checkGroups(sizes, m, "quantized_gmm");
      const out = zeroed(Float32Array, m * n);
      const lhsData = lhs.data as Float32Array | Int32Array;
      const lsData = ls === undefined ? null : f32(ls, "lhs scales");
      b.quantizedGmm(nativeWeightFormat(format, codes), lhsData, lsData, codes.data as Int8Array | Uint8Array, scales.data as Float32Array | Uint8Array, sizes, m, k, n, out);
      return [out];
    }
    case Prim.TopK: {
      const x = ins[0]!;
      const n = x.shape[x.shape.length - 1]!;
      const rows = n === 0 ? 0 : x.size / n;
      const { k } = params as Params<Prim.TopK>;
      const vals = zeroed(Float32Array, rows * k);
      const ids = zeroed(Int32Array, rows * k);
      b.topk(f32(x, "x"), rows, n, k, vals, ids);
      return [vals, ids];
    }
    case Prim.Argsort: {
      const out = zeroed(Int32Array, ins[0]!.size);
      b.argsortI32(i32(ins[0]!, "keys"), out);
      return [out];
    }
    case Prim.Add:
    case Prim.Sub:
    case Prim.Mul:
    case Prim.Div: {
      if (ins[0]!.dtype === "int32") {
        const out = writtenInFull("int32", ins[0]!.size) as Int32Array;
        b.binary(BINARY_OPS[prim]!, i32(ins[0]!, "lhs"), i32(ins[1]!, "rhs"), out);
        return [out];
      }
      const out = writtenInFull("float32", ins[0]!.size) as Float32Array;
      b.binary(BINARY_OPS[prim]!, f32(ins[0]!, "lhs"), f32(ins[1]!, "rhs"), out);
      return [out];
    }
    case Prim.Cast: {
      const to = (params as Params<Prim.Cast>).dtype;
      const out = writtenInFull(to, ins[0]!.size);
      // float32 to bfloat16: rounded here (roundsBf16), in one pass
      if (to === "bfloat16" && ins[0]!.dtype === "float32") b.roundBf16F32(ins[0]!.data as Float32Array, out as Float32Array);
      // a typed array's set converts as the reference's stores do: int32 to the nearest float32, float32 to
      // ToInt32 (truncated toward zero, wrapped; NaN and infinities 0), bfloat16 values copied
      else out.set(ins[0]!.data as Int32Array | Float32Array);
      return [out];
    }
    case Prim.Neg:
    case Prim.Exp:
    case Prim.Sigmoid: {
      const out = writtenInFull("float32", ins[0]!.size) as Float32Array;
      b.unaryF32(UNARY_OPS[prim]!, f32(ins[0]!, "x"), out);
      return [out];
    }
    case Prim.ReduceSum:
    case Prim.ReduceMax:
      return [reduceNative(b, prim, ins[0]!, (params as Params<Prim.ReduceSum>).axes)];
    case Prim.Softmax: {
      const x = ins[0]!;
      const n = x.shape[normalizeAxis((params as Params<Prim.Softmax>).axis, x.shape.length)]!;
      const out = writtenInFull("float32", x.size) as Float32Array;
      b.softmaxF32(x.data as Float32Array, n === 0 ? 0 : x.size / n, n, out);
      return [out];
    }
    case Prim.Reshape:
      // row-major order is unchanged: the output shares the input's storage, as on ref
      return [ins[0]!.data];
    case Prim.Transpose:
      return [transposeNative(b, ins[0]!, (params as Params<Prim.Transpose>).perm, outs[0]!)];
    case Prim.BroadcastTo:
      return [broadcastNative(b, ins[0]!, outs[0]!)];
    case Prim.Gather:
      return [gatherNative(b, ins[0]!, ins[1]!, outs[0]!)];
    case Prim.ScatterAdd:
      return [scatterAddNative(b, ins[0]!, ins[1]!, (params as Params<Prim.ScatterAdd>).numRows)];
    case Prim.Iota:
      return [iotaNative(b, params as Params<Prim.Iota>)];
    case Prim.Bincount:
      return [bincountNative(b, ins[0]!, (params as Params<Prim.Bincount>).length)];
    case Prim.Quantize: {
      const [x, noise] = [ins[0]!, ins[1]];
      const q = params as Params<Prim.Quantize>;
      const [P, C, Q] = quantizeLayout(x.shape, q.axes)!;
      const values = writtenInFull("int32", x.size) as Int32Array; // every element (or an error thrown below)
      const scales = writtenInFull("float32", P * Q) as Float32Array;
      const bad = b.quantizeF32(x.data as Float32Array, (noise?.data as Float32Array | undefined) ?? null, P, C, Q, q.bits, q.flavour === "qwix", values, scales);
      if (q.bits <= 8) quantizedInt8.add(values);
      if (bad >= 0) throw new MoeError(`[quantize] element ${bad} of the input is ${x.data[bad]}: abs-max scales need finite values`);
      return [values, scales];
    }
    case Prim.ExpertFfn:
      return expertFfnNative(b, ins, params as Params<Prim.ExpertFfn>, outs);
    case Prim.ExpertFfnBwd:
      return expertFfnBwdNative(b, ins, params as Params<Prim.ExpertFfnBwd>, outs);
    case Prim.AdamwStep: {
      const s = params as Params<Prim.AdamwStep>;
      const [p, g, m, v] = ins.map((t) => t.data as Float32Array) as [Float32Array, Float32Array, Float32Array, Float32Array];
      const f = Math.fround;
      b.adamwF32(p, g, m, v, f(s.lr), f(s.b1), f(s.omb1), f(s.b2), f(s.omb2), f(s.bc1), f(s.bc2), f(s.eps), f(s.weightDecay));
      return [p, m, v];
    }
    case Prim.SgdStep: {
      const s = params as Params<Prim.SgdStep>;
      const [p, g] = [ins[0]!.data as Float32Array, ins[1]!.data as Float32Array];
      const trace = s.hasTrace ? (ins[2]!.data as Float32Array) : null;
      b.sgdF32(p, g, trace, Math.fround(s.lr), Math.fround(s.momentum));
      return trace === null ? [p] : [p, trace];
    }
    default:
      throw new UnsupportedError(`[native] ${prim} is not implemented by the native backend`);
  }
}
