// The native backend's reductions, movement and indexing kernels (moe_reduce_f32, moe_copy_strided_b32,
// moe_gather_b32, moe_scatter_add_f32, moe_iota_i32, moe_bincount_i32): the operands as the C functions take them.
// Each result equals the reference kernel's bit for bit.
import { zeroed, type DType, type TypedArray } from "../../core/dtype.js";
import { storagePool } from "../../core/pool.js";
import { ShapeError } from "../../core/errors.js";
import { normalizeAxis, size, strides, type Aval } from "../../core/shape.js";
import type { Tensor } from "../../core/tensor.js";
import { Prim, type Params } from "../../prims/prims.js";
import { tiledCodes, WEIGHT_FORMATS, type WeightFormat } from "../../prims/quantized-gmm.js";
import type { NativeBinding } from "./binding.js";

/** Largest contraction whose int32 sum of int8 products cannot overflow (the integer kernels' bound). */
export const MAX_I8_K = Math.floor((2 ** 31 - 1) / 128 ** 2);

/** moe_weight_format_t of a format's codes: 0 int8, 1 int4, 2 fp8_e4m3, 3 mxfp4; 4 / 5 int8 / int4 in tiles. */
export const nativeWeightFormat = (format: WeightFormat, codes: Tensor): number =>
  WEIGHT_FORMATS.indexOf(format) + (tiledCodes(codes) ? 4 : 0);

/** Tensors held as bytes: quantized codes, e8m0 scales. */
export const byteBacked = (t: Tensor | undefined): boolean => t?.data instanceof Int8Array || t?.data instanceof Uint8Array;

/** float32 (or bfloat16 values held as float32) and int32 tensors: 4-byte elements the movement kernels copy as bits. */
export const is4Byte = (t: Tensor | undefined): boolean =>
  ((t?.dtype === "float32" || t?.dtype === "bfloat16") && t.data instanceof Float32Array) || (t?.dtype === "int32" && t.data instanceof Int32Array);

/**
 * A reduction of `axes` as [P, R, Q] (the reduced axes one run once size-1 axes are dropped), or undefined. The
 * reference visits each output's elements in row-major order, which is r ascending in this layout.
 */
export function reduceLayout(shape: readonly number[], axes: readonly number[]): [number, number, number] | undefined {
  const red = new Set(axes.map((a) => normalizeAxis(a, shape.length)));
  const kept = shape.map((d, i) => ({ d, r: red.has(i) })).filter((a) => a.d !== 1);
  const first = kept.findIndex((a) => a.r);
  if (first < 0) return [size(shape), 1, 1];
  let end = first;
  while (end < kept.length && kept[end]!.r) end++;
  if (kept.slice(end).some((a) => a.r)) return undefined;
  const prod = (from: number, to: number): number => kept.slice(from, to).reduce((x, a) => x * a.d, 1);
  return [prod(0, first), prod(first, end), prod(end, kept.length)];
}

const REDUCE_OPS: Readonly<Record<string, number>> = { [Prim.ReduceSum]: 0, [Prim.ReduceMax]: 1 };

export function reduceNative(b: NativeBinding, prim: Prim, x: Tensor, axes: readonly number[]): Float32Array {
  const [P, R, Q] = reduceLayout(x.shape, axes)!;
  const out = zeroed(Float32Array, P * Q);
  b.reduceF32(REDUCE_OPS[prim]!, x.data as Float32Array, P, R, Q, out);
  return out;
}

/**
 * The output array of a kernel that writes every element (float32 or int32 storage). Large ones are taken from the
 * storage pool, whose blocks are already mapped and come back when V8 frees their arrays, instead of fresh zeroed
 * mappings: a fresh 67 MB gather output cost 0.5–1 s of page faults and huge-page compaction where the copy takes 40 ms.
 */
export function writtenInFull(dtype: DType, n: number): Float32Array | Int32Array {
  const f = storagePool.take(n);
  return dtype === "int32" ? new Int32Array(f.buffer, f.byteOffset, n) : f;
}

/** dst over `shape` = x.data[offset + sum idx·st] (the reference's stridedCopy in gather form). */
function copyStrided(b: NativeBinding, x: Tensor, out: Aval, st: readonly number[]): TypedArray {
  const o = writtenInFull(out.dtype, size(out.shape));
  b.copyStrided(x.data as Float32Array | Int32Array, o, out.shape, st, 0);
  return o;
}

export function transposeNative(b: NativeBinding, x: Tensor, perm: readonly number[], out: Aval): TypedArray {
  const st = strides(x.shape);
  return copyStrided(
    b,
    x,
    out,
    perm.map((p) => st[p]!),
  );
}

export function broadcastNative(b: NativeBinding, x: Tensor, out: Aval): TypedArray {
  // same rank as out (the shape rule); size-1 axes are read with stride 0
  return copyStrided(
    b,
    x,
    out,
    strides(x.shape).map((s, d) => (x.shape[d] === 1 ? 0 : s)),
  );
}

export function gatherNative(b: NativeBinding, x: Tensor, idx: Tensor, out: Aval): TypedArray {
  const rows = x.shape[0]!;
  const o = writtenInFull(out.dtype, size(out.shape));
  const bad = b.gather(x.data as Float32Array | Int32Array, rows, size(x.shape.slice(1)), idx.data as Int32Array, o);
  if (bad >= 0) throw new ShapeError(`[gather] index ${idx.data[bad]} at position ${bad} out of range [0,${rows})`);
  return o;
}

export function scatterAddNative(b: NativeBinding, u: Tensor, idx: Tensor, numRows: number): Float32Array {
  const inner = size(u.shape.slice(1));
  const o = writtenInFull("float32", numRows * inner) as Float32Array; // every row (or an error thrown below)
  const bad = b.scatterAddF32(u.data as Float32Array, idx.data as Int32Array, inner, numRows, o);
  if (bad >= 0) throw new ShapeError(`[scatter_add] index ${idx.data[bad]} at position ${bad} out of range [0,${numRows})`);
  return o;
}

export function iotaNative(b: NativeBinding, { shape, axis }: Params<Prim.Iota>): Int32Array {
  const ax = normalizeAxis(axis, shape.length);
  const o = zeroed(Int32Array, size(shape));
  b.iotaI32(size(shape.slice(0, ax)), shape[ax]!, size(shape.slice(ax + 1)), o);
  return o;
}

export function bincountNative(b: NativeBinding, x: Tensor, length: number): Int32Array {
  const o = zeroed(Int32Array, length);
  b.bincountI32(x.data as Int32Array, o);
  return o;
}
