export function uniformInto(d: Float32Array, a: number, seed: number): Float32Array;
