// Exact layout transforms between checkpoint tensors: transposes, stacking, splitting of fused tensors.
// Plain loops over the storage arrays (values are moved, never recomputed), so every transform is
// bit-exact and invertible. Bits-backed bfloat16 tensors (as a checkpoint's BF16 tensors load) move their
// 16-bit patterns and stay bits-backed.
import { allocate, bf16BitsRef, zeroed, roundBf16InPlace, type TypedArray } from "../core/dtype.js";
import { ShapeError } from "../core/errors.js";
import { fmt } from "../core/shape.js";
import { Tensor } from "../core/tensor.js";

const prod = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

type Storage = TypedArray | Uint16Array;

/** What a transform moves: the bf16 bits when `bits` (exact for any bfloat16 tensor), else the values. */
const storageOf = (t: Tensor, bits: boolean): Storage => (bits ? (t.bf16Bits ?? bf16BitsRef(t.data as Float32Array)) : t.data);
const allocateLike = (t: Tensor, bits: boolean, n: number): Storage => (bits ? zeroed(Uint16Array, n) : allocate(t.dtype, n));
const bitsBacked = (...ts: Tensor[]): boolean => ts.every((t) => t.bf16Bits !== undefined);

/** Swap the last two axes: [..., a, b] -> [..., b, a]. */
export function transposeLast2(t: Tensor): Tensor {
  if (t.ndim < 2) throw new ShapeError(`[transpose] needs at least 2 axes, got ${fmt(t.shape)}`);
  const a = t.shape[t.ndim - 2]!;
  const b = t.shape[t.ndim - 1]!;
  const n = prod(t.shape.slice(0, -2));
  const bits = bitsBacked(t);
  const out = allocateLike(t, bits, t.size);
  transposeInto(storageOf(t, bits), out, n, a, b, 0);
  return new Tensor(out, [...t.shape.slice(0, -2), b, a], t.dtype);
}

/** For each of n blocks, dst[off + k*a*b + j*a + i] = src[k*a*b + i*b + j]. */
function transposeInto(src: Storage, dst: Storage, n: number, a: number, b: number, off: number): void {
  const ab = a * b;
  for (let k = 0; k < n; k++) {
    const s0 = k * ab;
    const d0 = off + k * ab;
    for (let i = 0; i < a; i++) {
      const si = s0 + i * b;
      for (let j = 0; j < b; j++) dst[d0 + j * a + i] = src[si + j]!;
    }
  }
}

/**
 * Stack E tensors [a, b] into [E, b, a] (each transposed), reading them one at a time: torch Linear
 * weights [out, in] of every expert -> MaxText [E, in, out].
 */
export function stackTransposed(count: number, read: (e: number) => Tensor, shape: readonly [number, number]): Tensor {
  const [a, b] = shape;
  let out: Storage | undefined;
  let dtype: Tensor["dtype"] | undefined;
  let bits = false;
  for (let e = 0; e < count; e++) {
    const t = read(e);
    if (t.ndim !== 2 || t.shape[0] !== a || t.shape[1] !== b)
      throw new ShapeError(`[stack] expert ${e} has shape ${fmt(t.shape)}, expected ${fmt(shape)}`);
    if (dtype === undefined) {
      dtype = t.dtype;
      bits = bitsBacked(t);
      out = allocateLike(t, bits, count * a * b);
    } else if (t.dtype !== dtype) {
      throw new ShapeError(`[stack] expert ${e} is ${t.dtype}, expert 0 is ${dtype}`);
    }
    transposeInto(storageOf(t, bits), out!, 1, a, b, e * a * b);
  }
  if (out === undefined || dtype === undefined) throw new ShapeError("[stack] no tensors");
  return new Tensor(out, [count, b, a], dtype);
}

/** Slice e of axis 0: [E, ...] -> [...] (a copy). */
export function indexAxis0(t: Tensor, e: number): Tensor {
  const inner = prod(t.shape.slice(1));
  return new Tensor(storageOf(t, bitsBacked(t)).slice(e * inner, (e + 1) * inner), t.shape.slice(1), t.dtype);
}

/** How a fused axis of length 2n holds its two parts. */
export type SplitMode = "halves" | "interleave";

/** Split `axis` (length 2n) into two tensors of length n: first/second half, or even/odd positions. */
export function splitAxis(t: Tensor, axis: number, mode: SplitMode): [Tensor, Tensor] {
  const ax = axis < 0 ? axis + t.ndim : axis;
  const len = t.shape[ax]!;
  if (len % 2 !== 0) throw new ShapeError(`[split] axis ${ax} of ${fmt(t.shape)} has odd length`);
  const n = len / 2;
  const outer = prod(t.shape.slice(0, ax));
  const inner = prod(t.shape.slice(ax + 1));
  const shape = [...t.shape.slice(0, ax), n, ...t.shape.slice(ax + 1)];
  const bits = bitsBacked(t);
  const src = storageOf(t, bits);
  const A = allocateLike(t, bits, outer * n * inner);
  const B = allocateLike(t, bits, outer * n * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < n; i++) {
      const ia = mode === "halves" ? i : 2 * i;
      const ib = mode === "halves" ? n + i : 2 * i + 1;
      const src0 = o * len * inner;
      const dst = (o * n + i) * inner;
      for (let k = 0; k < inner; k++) {
        A[dst + k] = src[src0 + ia * inner + k]!;
        B[dst + k] = src[src0 + ib * inner + k]!;
      }
    }
  }
  return [new Tensor(A, shape, t.dtype), new Tensor(B, shape, t.dtype)];
}

/** Inverse of splitAxis. */
export function joinAxis(a: Tensor, b: Tensor, axis: number, mode: SplitMode): Tensor {
  if (a.shape.join() !== b.shape.join()) throw new ShapeError(`[join] parts ${fmt(a.shape)} and ${fmt(b.shape)} differ`);
  if (a.dtype !== b.dtype) throw new ShapeError(`[join] parts are ${a.dtype} and ${b.dtype}`);
  const ax = axis < 0 ? axis + a.ndim : axis;
  const n = a.shape[ax]!;
  const outer = prod(a.shape.slice(0, ax));
  const inner = prod(a.shape.slice(ax + 1));
  const bits = bitsBacked(a, b);
  const sa = storageOf(a, bits);
  const sb = storageOf(b, bits);
  const out = allocateLike(a, bits, 2 * a.size);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < n; i++) {
      const ia = mode === "halves" ? i : 2 * i;
      const ib = mode === "halves" ? n + i : 2 * i + 1;
      const src = (o * n + i) * inner;
      const dst0 = o * 2 * n * inner;
      for (let k = 0; k < inner; k++) {
        out[dst0 + ia * inner + k] = sa[src + k]!;
        out[dst0 + ib * inner + k] = sb[src + k]!;
      }
    }
  }
  return new Tensor(out, [...a.shape.slice(0, ax), 2 * n, ...a.shape.slice(ax + 1)], a.dtype);
}

/** The same values in another dtype (exact when the target holds them: bf16 -> f32/f64, f32 -> f64; narrowing rounds). */
export function withDtype(t: Tensor, dtype: Tensor["dtype"] | undefined): Tensor {
  if (dtype === undefined || dtype === t.dtype) return t;
  const out = allocate(dtype, t.size);
  for (let i = 0; i < t.size; i++) out[i] = t.data[i]!;
  if (dtype === "bfloat16") roundBf16InPlace(out as Float32Array);
  return new Tensor(out, t.shape, dtype);
}
