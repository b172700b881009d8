// The bench's tensor contents, shared by bench/moe-layer.ts and the plain-JavaScript ranks of bench/layer-rank.mjs.

/** Fills `d` with Uniform(-a, a) from xorshift32: fast enough for 10^8 elements; values only need the right scale. */
export function uniformInto(d, a, seed) {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < d.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    d[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * a;
  }
  return d;
}
