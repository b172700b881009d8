// Seeded random tensors for tests, built on the library's Threefry keys (src/nn/random.ts).
import type { DType } from "../../src/core/dtype.js";
import { Tensor, tensor } from "../../src/core/tensor.js";
import { foldIn, normal, prngKey, randint, randomBits, uniform, type Key } from "../../src/nn/random.js";

/** A stream of independent keys from one seed: every draw folds in a fresh counter. */
export class Rng {
  private readonly root: Key;
  private count = 0;

  constructor(seed: number) {
    this.root = prngKey(seed);
  }

  key(): Key {
    return foldIn(this.root, this.count++);
  }

  /** N(0, scale²). */
  normal(shape: readonly number[], dtype: DType = "float64", scale = 1): Tensor {
    const t = normal(this.key(), shape, "float64");
    return tensor(
      Array.from(t.data, (v) => v * scale),
      shape,
      dtype,
    );
  }

  /** Uniform in [lo, hi). */
  uniform(shape: readonly number[], lo = 0, hi = 1, dtype: DType = "float64"): Tensor {
    return uniform(this.key(), shape, lo, hi, dtype);
  }

  /** n float32 values uniform in [-scale, scale). */
  floats(n: number, scale = 1): Float32Array {
    return uniform(this.key(), [n], -scale, scale, "float32").data as Float32Array;
  }

  /** A tensor uniform in [-scale, scale), rounded to `dtype` (float32 by default). */
  tensor(shape: readonly number[], dtype: DType = "float32", scale = 1): Tensor {
    return uniform(this.key(), shape, -scale, scale, dtype);
  }

  /** n random 32-bit words (as float32 bit patterns they hit NaNs, infinities and denormals). */
  bits(n: number): Uint32Array {
    return randomBits(this.key(), n);
  }

  /** int32 uniform in [lo, hi). */
  randint(shape: readonly number[], lo: number, hi: number): Tensor {
    return randint(this.key(), shape, lo, hi);
  }

  /** Values with |x| in [lo, hi) and a random sign: stays clear of kinks at 0 (relu, abs, sign). */
  awayFromZero(shape: readonly number[], lo = 0.2, hi = 1.5, dtype: DType = "float64"): Tensor {
    const mag = this.uniform(shape, lo, hi).data;
    const sgn = this.uniform(shape).data;
    return tensor(
      Array.from(mag, (m, i) => (sgn[i]! < 0.5 ? -m : m)),
      shape,
      dtype,
    );
  }

  /** Distinct values (a shuffled, jittered grid), so max/top-k/sort have no ties. */
  distinct(shape: readonly number[], dtype: DType = "float64"): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    const perm = this.permutation(n);
    const jit = this.uniform([n], 0, 0.5).data;
    return tensor(
      perm.map((p, i) => (p - n / 2) * 0.75 + jit[i]!),
      shape,
      dtype,
    );
  }

  /** A uniformly random permutation of 0..n-1 (Fisher–Yates), as a plain array. */
  permutation(n: number): number[] {
    const u = this.uniform([Math.max(n, 1)]).data;
    const p = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(u[i]! * (i + 1));
      [p[i], p[j]] = [p[j]!, p[i]!];
    }
    return p;
  }

  /** Non-negative integers summing to `total`, `parts` of them (random composition). */
  composition(total: number, parts: number): number[] {
    const out = new Array<number>(parts).fill(0);
    if (parts === 0) return out;
    const picks = this.randint([total], 0, parts).data;
    for (const p of picks) out[p]!++;
    return out;
  }
}

/** Convenience: a float64 N(0,1) tensor from a seed. */
export function randn(seed: number, shape: readonly number[], dtype: DType = "float64"): Tensor {
  return new Rng(seed).normal(shape, dtype);
}
