// Index arithmetic for the naive reference computations in the tests (independent of src/core/shape).

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major multi-index of flat position `flat`. */
export function unravel(flat: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length).fill(0);
  let r = flat;
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d]!;
    idx[d] = r % n;
    r = Math.floor(r / n);
  }
  return idx;
}

/** Flat position of a multi-index. */
export function ravel(idx: readonly number[], shape: readonly number[]): number {
  let flat = 0;
  for (let d = 0; d < shape.length; d++) flat = flat * shape[d]! + idx[d]!;
  return flat;
}

/** Every multi-index of `shape`, row-major. */
export function* indices(shape: readonly number[]): Generator<number[]> {
  const n = numel(shape);
  for (let f = 0; f < n; f++) yield unravel(f, shape);
}

/** 0..n-1 */
export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** A plain array of numbers from a JS function of the flat position. */
export function build(shape: readonly number[], f: (idx: number[], flat: number) => number): number[] {
  const out: number[] = [];
  let flat = 0;
  for (const idx of indices(shape)) out.push(f(idx, flat++));
  return out;
}
