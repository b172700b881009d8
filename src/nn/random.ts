// Explicit, splittable PRNG keys (counter-based Threefry-2x32, 20 rounds). No global RNG.
import { allocate, isFloat, roundBf16InPlace, type DType } from "../core/dtype.js";
import { DTypeError, MoeError } from "../core/errors.js";
import { checkShape, size } from "../core/shape.js";
import { Tensor } from "../core/tensor.js";

/** A PRNG key: two uint32 words. */
export type Key = readonly [number, number];

const ROT = [13, 15, 26, 6, 17, 29, 16, 24];

function rotl(x: number, r: number): number {
  return ((x << r) | (x >>> (32 - r))) >>> 0;
}

/** Threefry-2x32 block function: (key, counter) -> two random uint32. */
export function threefry2x32(key: Key, c0: number, c1: number): [number, number] {
  const k0 = key[0] >>> 0;
  const k1 = key[1] >>> 0;
  const k2 = (k0 ^ k1 ^ 0x1bd11bda) >>> 0;
  const ks = [k0, k1, k2];
  let x0 = (c0 + k0) >>> 0;
  let x1 = (c1 + k1) >>> 0;
  for (let block = 0; block < 5; block++) {
    for (let r = 0; r < 4; r++) {
      x0 = (x0 + x1) >>> 0;
      x1 = rotl(x1, ROT[(block % 2) * 4 + r]!) ^ x0;
    }
    x0 = (x0 + ks[(block + 1) % 3]!) >>> 0;
    x1 = (x1 + ks[(block + 2) % 3]! + block + 1) >>> 0;
  }
  return [x0, x1];
}

function checkInteger(v: number, what: string, where: string): void {
  if (!Number.isSafeInteger(v)) throw new MoeError(`[${where}] ${what} ${v} is not a safe integer`);
}

/**
 * Refuses what is not a key (two integers in [0, 2^32), as prngKey makes): a number, a string or a fractional word
 * would otherwise read as some other key, silently (two seeds giving the same draws).
 */
export function checkKey(key: unknown, where: string, what = "key"): asserts key is Key {
  const word = (v: unknown): boolean => Number.isInteger(v) && (v as number) >= 0 && (v as number) < 2 ** 32;
  if (!Array.isArray(key) || key.length !== 2 || !word(key[0]) || !word(key[1])) {
    const shown = Array.isArray(key) ? `[${key.map(String).join(", ")}]` : typeof key === "string" ? JSON.stringify(key) : String(key);
    throw new MoeError(`[${where}] ${what} must be a PRNG key (prngKey(seed), split, foldIn: two uint32 words), got ${shown}`);
  }
}

/** A key from an integer seed (a NaN or fractional seed would silently equal another seed's key). */
export function prngKey(seed: number): Key {
  checkInteger(seed, "seed", "prngKey");
  return [Math.floor(seed / 2 ** 32) >>> 0, seed >>> 0];
}

/** n independent keys derived from `key`. */
export function split(key: Key, n = 2): Key[] {
  checkKey(key, "split");
  checkInteger(n, "count", "split");
  return Array.from({ length: n }, (_, i) => threefry2x32(key, i, 0x6b657973));
}

/** A key derived from `key` and an integer (e.g. a layer index or rank). */
export function foldIn(key: Key, data: number): Key {
  checkKey(key, "foldIn");
  checkInteger(data, "data", "foldIn");
  return threefry2x32(key, data >>> 0, 0x666f6c64);
}

/** Elements of `shape`, checked and named for `where`. */
function count(shape: readonly number[], where: string): number {
  checkShape(shape, where);
  return size(shape);
}

/** n uint32 words. */
export function randomBits(key: Key, n: number): Uint32Array {
  checkKey(key, "randomBits");
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i += 2) {
    const [a, b] = threefry2x32(key, i >>> 1, 0);
    out[i] = a;
    if (i + 1 < n) out[i + 1] = b;
  }
  return out;
}

/**
 * A tensor whose element i is f(u_i), u_i uniform in [0, 1) with 32 random bits (randomBits' word i / 2^32), written
 * straight into its storage (no float64 copy of the draws: a 100M-element kernel made 1.2 GB of temporaries).
 */
function fromUniform(key: Key, shape: readonly number[], dtype: DType, where: string, f: (u: number) => number): Tensor {
  checkKey(key, where);
  const n = count(shape, where);
  const d = allocate(dtype, n);
  for (let i = 0; i < n; i += 2) {
    const [a, b] = threefry2x32(key, i >>> 1, 0);
    d[i] = f(a / 4294967296);
    if (i + 1 < n) d[i + 1] = f(b / 4294967296);
  }
  if (dtype === "bfloat16") roundBf16InPlace(d as Float32Array);
  return new Tensor(d, shape, dtype);
}

/** `dtype`, refused unless a float: real draws in an integer dtype were truncated (normal(key, s, "int32") gave zeros). */
function floatDType(dtype: DType, where: string): DType {
  if (!isFloat(dtype)) throw new DTypeError(`[${where}] dtype ${dtype}: draws need float32, float64 or bfloat16`);
  return dtype;
}

export function uniform(key: Key, shape: readonly number[], lo = 0, hi = 1, dtype: DType = "float32"): Tensor {
  return fromUniform(key, shape, floatDType(dtype, "uniform"), "uniform", (v) => lo + (hi - lo) * v);
}

/** Integers uniform in [lo, hi) (int32). */
export function randint(key: Key, shape: readonly number[], lo: number, hi: number): Tensor {
  return fromUniform(key, shape, "int32", "randint", (v) => lo + Math.floor(v * (hi - lo)));
}

// Acklam's inverse normal CDF (relative error < 1.2e-9).
const A = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
const B = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
const C = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
const D = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];

function poly(c: readonly number[], x: number): number {
  return c.reduce((acc, v) => acc * x + v, 0);
}

export function ndtri(p: number): number {
  if (p <= 0) return -Infinity;
  if (p >= 1) return Infinity;
  const pl = 0.02425;
  let x: number;
  if (p < pl) {
    const q = Math.sqrt(-2 * Math.log(p));
    x = poly(C, q) / (poly(D, q) * q + 1);
  } else if (p > 1 - pl) {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    x = -poly(C, q) / (poly(D, q) * q + 1);
  } else {
    const q = p - 0.5;
    const r = q * q;
    x = (poly(A, r) * q) / (poly(B, r) * r + 1);
  }
  return x;
}

function normCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

function erfc(x: number): number {
  // Chebyshev-fitted erfc (Numerical Recipes erfcc), fractional error < 1.2e-7
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

export function normal(key: Key, shape: readonly number[], dtype: DType = "float32"): Tensor {
  return fromUniform(key, shape, floatDType(dtype, "normal"), "normal", (v) => ndtri(Math.min(Math.max(v, 1e-300), 1 - 2 ** -33)));
}

/** N(0,1) truncated to (lo, hi), by inverse CDF. */
export function truncatedNormal(key: Key, shape: readonly number[], lo = -2, hi = 2, dtype: DType = "float32"): Tensor {
  const a = normCdf(lo);
  const b = normCdf(hi);
  return fromUniform(key, shape, floatDType(dtype, "truncatedNormal"), "truncatedNormal", (v) =>
    Math.min(Math.max(ndtri(a + (b - a) * v), lo), hi),
  );
}
