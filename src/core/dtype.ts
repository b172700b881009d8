// Element types. bfloat16 is stored in a Float32Array whose values are rounded to bf16 on every write. int8 and
// uint8 are storage types of quantized weights (codes): only the primitives that decode them accept them.
import { DTypeError } from "./errors.js";

export type DType = "float32" | "float64" | "bfloat16" | "int32" | "int8" | "uint8";
export type TypedArray = Float32Array | Float64Array | Int32Array | Int8Array | Uint8Array;

export const DTYPES: readonly DType[] = ["float32", "float64", "bfloat16", "int32", "int8", "uint8"];

export function isFloat(d: DType): boolean {
  return d === "float32" || d === "float64" || d === "bfloat16";
}

type ArrayCtor<T> = { new (n: number): T; new (buffer: ArrayBuffer): T; readonly BYTES_PER_ELEMENT: number };

const LARGE_BYTES = 8 << 20;
let largeBuffer: ((bytes: number) => ArrayBuffer) | undefined;

/**
 * Zeroed buffers of 8 MiB and more come from `source` from now on (the native backend's mapped blocks in huge pages,
 * which weights streamed by decode read with a TLB miss per 2 MiB instead of per 4 KiB, reused once V8 frees them);
 * undefined: the JS heap's.
 */
export function useLargeBuffers(source: ((bytes: number) => ArrayBuffer) | undefined): void {
  largeBuffer = source;
}

/** n zeroed elements of `C`. */
export function zeroed<T>(C: ArrayCtor<T>, n: number): T {
  const bytes = n * C.BYTES_PER_ELEMENT;
  return largeBuffer !== undefined && bytes >= LARGE_BYTES ? new C(largeBuffer(bytes)) : new C(n);
}

const CTORS: Record<DType, ArrayCtor<TypedArray>> = {
  float32: Float32Array,
  bfloat16: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  int8: Int8Array,
  uint8: Uint8Array,
};

/** The typed array class of `d`'s storage (Float32Array for bfloat16); a string that is no DType is refused. */
export function storageOf(d: DType): ArrayCtor<TypedArray> {
  if (!Object.hasOwn(CTORS, d)) throw new DTypeError(`[tensor] dtype ${JSON.stringify(d)} is not one of ${DTYPES.join(", ")}`);
  return CTORS[d];
}

export function allocate(d: DType, n: number): TypedArray {
  return zeroed(storageOf(d), n);
}

const INT_RANGE: Partial<Record<DType, number[]>> = { int32: [-(2 ** 31), 2 ** 31 - 1], int8: [-128, 127], uint8: [0, 255] };

/** Index of the first of `values` that `d` cannot hold (an integer dtype's: a fraction, or out of its range), or -1. */
export function firstUnfit(d: DType, values: ArrayLike<number>): number {
  const r = INT_RANGE[d];
  for (let i = 0; r !== undefined && i < values.length; i++)
    if (!Number.isInteger(values[i]) || values[i]! < r[0]! || values[i]! > r[1]!) return i;
  return -1;
}

const RANK: Record<DType, number> = { int8: 0, uint8: 0, int32: 0, bfloat16: 1, float32: 2, float64: 3 };

/** Result type of a binary op: the wider float, ints promote to the float operand's type. */
export function promote(a: DType, b: DType): DType {
  return RANK[a] >= RANK[b] ? a : b;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

const isNaNBits = (bits: number): boolean => (bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0;

/** The bfloat16 bit pattern of float32 bits: round half to even; a NaN keeps its sign and top payload bits, made quiet. */
export function bf16BitsOf(bits: number): number {
  return isNaNBits(bits) ? (bits >>> 16) | 0x40 : ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Round a float to the nearest bfloat16 value (round-half-to-even), NaN preserved. */
export function toBf16(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  if (isNaNBits(bits)) return x;
  u32[0] = bf16BitsOf(bits) << 16;
  return f32[0]!;
}

/** bf16 bit patterns of float32 values (round to nearest even; NaN made quiet): the spec of the native conversion. */
export function bf16BitsRef(data: Float32Array): Uint16Array {
  const u32 = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const bits = new Uint16Array(data.length);
  for (let i = 0; i < u32.length; i++) bits[i] = bf16BitsOf(u32[i]!);
  return bits;
}

/** float32 values of bf16 bit patterns (exact: the bits become the top half of each float32). */
export function bf16BitsToF32(halves: Uint16Array): Float32Array {
  const out = new Float32Array(halves.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < halves.length; i++) bits[i] = halves[i]! << 16;
  return out;
}

/** Rounds each element to the nearest bfloat16 value in place (toBf16 on the bits, without a float round trip). */
export function roundBf16InPlace(a: Float32Array): void {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < u.length; i++) {
    const bits = u[i]!;
    if (!isNaNBits(bits)) u[i] = (bits + 0x7fff + ((bits >>> 16) & 1)) & 0xffff0000;
  }
}

export function parseDType(name: string): DType | undefined {
  return (DTYPES as readonly string[]).includes(name) ? (name as DType) : undefined;
}
