import { parse as parseYaml } from "yaml";
import type { Tensor } from "../core/tensor.js";

/** A --set value: YAML 1.1 scalars/lists (numbers, booleans, [a, b]) as MaxText reads its overrides, else the raw string. */
export function parseValue(v: string): unknown {
  try {
    return parseYaml(v, { version: "1.1" }) as unknown;
  } catch {
    return v;
  }
}

/** mean, std, min and max of a tensor's elements. */
export function stats(t: Tensor): { mean: number; std: number; min: number; max: number } {
  let s = 0;
  let s2 = 0;
  let mn = Infinity;
  let mx = -Infinity;
  for (const v of t.data) {
    s += v;
    s2 += v * v;
    mn = Math.min(mn, v);
    mx = Math.max(mx, v);
  }
  const n = t.size;
  return { mean: s / n, std: Math.sqrt(Math.max(0, s2 / n - (s / n) ** 2)), min: mn, max: mx };
}
