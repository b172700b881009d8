// Element codecs shared by the checkpoint formats: little-endian bytes in a file's element type <-> tensor storage.
import { bf16BitsToF32, roundBf16InPlace, zeroed, type DType, type TypedArray } from "../core/dtype.js";
import { UnsupportedError } from "../core/errors.js";
import type { Tensor } from "../core/tensor.js";

/** Element types of checkpoint files, named as in safetensors (.npy descrs map onto them). */
export type StorageDType =
  | "BOOL"
  | "U8"
  | "I8"
  | "U16"
  | "I16"
  | "U32"
  | "I32"
  | "U64"
  | "I64"
  | "F16"
  | "BF16"
  | "F32"
  | "F64"
  /** float8_e4m3fn: read only as uint8 codes (quantized weights) */
  | "F8_E4M3";

const WIDTH: Record<StorageDType, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  U16: 2,
  I16: 2,
  U32: 4,
  I32: 4,
  U64: 8,
  I64: 8,
  F16: 2,
  BF16: 2,
  F32: 4,
  F64: 8,
  F8_E4M3: 1,
};

/** Inclusive value range of the integer types, for values coming from an int32 tensor. */
const INT_RANGE: Partial<Record<StorageDType, readonly [number, number]>> = {
  BOOL: [0, 1],
  U8: [0, 255],
  I8: [-128, 127],
  U16: [0, 65535],
  I16: [-32768, 32767],
  U32: [0, 2 ** 32 - 1],
  U64: [0, 2 ** 32 - 1],
};

/** Reports a problem with the values being converted; the caller adds the file and tensor. */
export type Fail = (problem: string) => never;

export const STORAGE_DTYPES = Object.keys(WIDTH) as StorageDType[];

export function isStorageDType(name: string): name is StorageDType {
  return Object.hasOwn(WIDTH, name);
}

export function storageWidth(d: StorageDType): number {
  return WIDTH[d];
}

export function isFloatStorage(d: StorageDType): boolean {
  return d === "F16" || d === "BF16" || d === "F32" || d === "F64";
}

/** The storage type that holds a moekit dtype exactly. */
export function defaultStorage(d: DType): StorageDType {
  const map: Record<DType, StorageDType> = { float32: "F32", float64: "F64", bfloat16: "BF16", int32: "I32", int8: "I8", uint8: "U8" };
  return map[d];
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function requireLittleEndian(): void {
  if (!LITTLE_ENDIAN) throw new UnsupportedError("[io] checkpoint I/O needs a little-endian host");
}

interface ArrayCtor<T> {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
}

/** The bytes as an array of `Ctor`'s elements, without copying unless they are misaligned. */
function viewAs<T>(Ctor: ArrayCtor<T>, bytes: Uint8Array): T {
  const width = Ctor.BYTES_PER_ELEMENT;
  const src = bytes.byteOffset % width === 0 ? bytes : bytes.slice();
  return new Ctor(src.buffer, src.byteOffset, src.byteLength / width);
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** A decoded element array and the moekit dtype it holds exactly. */
export interface Decoded {
  /** the elements; for bfloat16 their bf16 bit patterns (a Tensor takes those as they are) */
  data: TypedArray | Uint16Array;
  dtype: DType;
}

/**
 * Decodes little-endian elements of type `dtype`: floats keep their values exactly (F16 -> float32,
 * BF16 -> bfloat16), integers become int32 and `fail` is called for a value outside int32 range.
 * The result may share memory with `bytes`.
 */
export function decodeElements(dtype: StorageDType, bytes: Uint8Array, fail: Fail): Decoded {
  requireLittleEndian();
  switch (dtype) {
    case "F32":
      return { data: viewAs(Float32Array, bytes), dtype: "float32" };
    case "F64":
      return { data: viewAs(Float64Array, bytes), dtype: "float64" };
    case "BF16":
      return { data: viewAs(Uint16Array, bytes), dtype: "bfloat16" };
    case "F16":
      return { data: f16ToF32(viewAs(Uint16Array, bytes)), dtype: "float32" };
    case "I32":
      return { data: viewAs(Int32Array, bytes), dtype: "int32" };
    case "I64":
    case "U64":
      return { data: narrow64(viewAs(Int32Array, bytes), dtype === "U64", fail), dtype: "int32" };
    case "F8_E4M3":
      return fail("float8 values are read only as the codes of a quantized weight");
    default:
      return { data: decodeSmallInt(dtype, bytes, fail), dtype: "int32" };
  }
}

function decodeSmallInt(dtype: StorageDType, bytes: Uint8Array, fail: Fail): Int32Array {
  switch (dtype) {
    case "BOOL":
      checkRange(bytes, dtype, fail);
      return Int32Array.from(bytes);
    case "U8":
      return Int32Array.from(bytes);
    case "I8":
      return Int32Array.from(viewAs(Int8Array, bytes));
    case "U16":
      return Int32Array.from(viewAs(Uint16Array, bytes));
    case "I16":
      return Int32Array.from(viewAs(Int16Array, bytes));
    case "U32": {
      const values = viewAs(Uint32Array, bytes);
      const at = values.findIndex((v) => v > 0x7fffffff);
      if (at >= 0) fail(`value ${values[at]} at index ${at} does not fit int32`);
      return viewAs(Int32Array, bytes);
    }
    default:
      throw new Error(`unreachable: ${dtype}`);
  }
}

/** 64-bit integers as (low, high) int32 word pairs -> int32, failing on the first value out of range. */
function narrow64(words: Int32Array, unsigned: boolean, fail: Fail): Int32Array {
  const out = new Int32Array(words.length / 2);
  for (let i = 0; i < out.length; i++) {
    const lo = words[2 * i]!;
    const hi = words[2 * i + 1]!;
    const fits = unsigned ? hi === 0 && lo >= 0 : hi === lo >> 31;
    if (!fits) {
      const value = (BigInt(hi) << 32n) | BigInt(lo >>> 0);
      fail(`value ${unsigned ? BigInt.asUintN(64, value) : value} at index ${i} does not fit int32`);
    }
    out[i] = lo;
  }
  return out;
}

let halfTable: Uint32Array | undefined;

function f16ToF32(halves: Uint16Array): Float32Array {
  halfTable ??= Uint32Array.from({ length: 65536 }, (_, h) => halfToFloatBits(h));
  const out = zeroed(Float32Array, halves.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < halves.length; i++) bits[i] = halfTable[halves[i]!]!;
  return out;
}

/** IEEE binary16 bits -> binary32 bits, exact (NaN payloads kept). */
function halfToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  let exp = (h >> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp === 0) {
    if (mant === 0) return sign >>> 0;
    exp = 1;
    while ((mant & 0x400) === 0) {
      mant <<= 1;
      exp--;
    }
    mant &= 0x3ff;
  }
  return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
}

/** binary32 bits -> binary16 bits, rounding to nearest even; overflow gives infinity, NaN stays NaN. */
function floatToHalfBits(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  const mant = f & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant === 0 ? 0 : mant >> 13 || 0x200);
  const e = exp - 112;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) return sign | roundShift(mant | 0x800000, 14 - e);
  return sign | ((e << 10) + roundShift(mant, 13));
}

/** x >> shift rounded to nearest, ties to even (a carry out of the mantissa correctly bumps the exponent). */
function roundShift(x: number, shift: number): number {
  if (shift > 24) return 0;
  const q = x >>> shift;
  const rem = x & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rem > half || (rem === half && (q & 1) === 1) ? q + 1 : q;
}

/** binary32 bits -> bfloat16 bits, rounding to nearest even; NaN stays NaN (its payload's top bits kept). */
function floatToBf16Bits(f: number): number {
  if ((f & 0x7f800000) === 0x7f800000 && (f & 0x7fffff) !== 0) {
    const high = f >>> 16;
    return (high & 0x7f) === 0 ? high | 0x40 : high;
  }
  return ((f + 0x7fff + ((f >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Encodes a tensor's elements as little-endian `dtype`. Floats round to nearest even (float64 and
 * int32 sources go through float32 for F16/BF16); integer types need an int32 tensor whose values fit,
 * else `fail` is called. The result may share memory with the tensor.
 */
export function encodeElements(t: Tensor, dtype: StorageDType, fail: Fail): Uint8Array {
  requireLittleEndian();
  if (isFloatStorage(dtype)) return encodeFloat(t, dtype);
  // quantized codes are written as they are held
  if ((t.dtype === "int8" && dtype === "I8") || (t.dtype === "uint8" && (dtype === "U8" || dtype === "F8_E4M3"))) return bytesOf(t.data);
  if (dtype === "F8_E4M3") fail(`a ${t.dtype} tensor cannot be stored as F8_E4M3: it holds e4m3 codes, from a uint8 tensor`);
  if (t.dtype !== "int32") fail(`a ${t.dtype} tensor cannot be stored as ${dtype}; integer types need int32`);
  return encodeInt(t.data as Int32Array, dtype, fail);
}

function encodeFloat(t: Tensor, dtype: StorageDType): Uint8Array {
  const f32Storage = t.dtype === "float32" || t.dtype === "bfloat16";
  switch (dtype) {
    case "F64":
      return bytesOf(t.dtype === "float64" ? t.data : Float64Array.from(t.data));
    case "F32":
      return bytesOf(f32Storage ? t.data : Float32Array.from(t.data));
    default: {
      if (dtype === "BF16" && t.bf16Bits !== undefined) return bytesOf(t.bf16Bits);
      const bits = viewAs(Uint32Array, bytesOf(f32Storage ? t.data : Float32Array.from(t.data)));
      const toHalf = dtype === "BF16" ? floatToBf16Bits : floatToHalfBits;
      const out = new Uint16Array(bits.length);
      for (let i = 0; i < bits.length; i++) out[i] = toHalf(bits[i]!);
      return bytesOf(out);
    }
  }
}

function encodeInt(values: Int32Array, dtype: StorageDType, fail: Fail): Uint8Array {
  checkRange(values, dtype, fail);
  switch (dtype) {
    case "BOOL":
    case "U8":
      return Uint8Array.from(values);
    case "I8":
      return bytesOf(Int8Array.from(values));
    case "U16":
      return bytesOf(Uint16Array.from(values));
    case "I16":
      return bytesOf(Int16Array.from(values));
    case "U32":
    case "I32":
      return bytesOf(values);
    default:
      return bytesOf(widen64(values));
  }
}

function checkRange(values: ArrayLike<number>, dtype: StorageDType, fail: Fail): void {
  const range = INT_RANGE[dtype];
  if (range === undefined) return;
  const [lo, hi] = range;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < lo || v > hi) fail(`value ${v} at index ${i} does not fit ${dtype} [${lo}, ${hi}]`);
  }
}

/** int32 -> 64-bit (low, high) word pairs, sign-extended. */
function widen64(values: Int32Array): Int32Array {
  const out = new Int32Array(values.length * 2);
  for (let i = 0; i < values.length; i++) {
    out[2 * i] = values[i]!;
    out[2 * i + 1] = values[i]! >> 31;
  }
  return out;
}

/** I8 / U8 (or F8_E4M3) bytes as int8 / uint8 codes, without widening (quantized weights); other types fail. */
export function codesOf(dtype: StorageDType, bytes: Uint8Array, to: "int8" | "uint8", fail: Fail): Int8Array | Uint8Array {
  const ok = to === "int8" ? dtype === "I8" : dtype === "U8" || dtype === "F8_E4M3";
  if (!ok) return fail(`${dtype} values cannot be read as ${to} codes`);
  return to === "int8" ? viewAs(Int8Array, bytes) : bytes;
}

/** Converts decoded data to another moekit dtype; float -> int32 is refused through `fail`. */
export function castDecoded(d: Decoded, to: DType, fail: Fail): TypedArray | Uint16Array {
  if (d.dtype === to) return d.data;
  const values = d.data instanceof Uint16Array ? bf16BitsToF32(d.data) : d.data;
  switch (to) {
    case "float64":
      return Float64Array.from(values);
    case "float32":
      return values instanceof Float32Array ? values : Float32Array.from(values);
    case "bfloat16": {
      const out = Float32Array.from(values);
      roundBf16InPlace(out);
      return out;
    }
    case "int32":
    case "int8":
    case "uint8":
      return fail(`${d.dtype} values cannot be read as ${to}`);
    default:
      return to satisfies never;
  }
}
