// A start-up check of an SPMD program: every rank must have been given the same config and shapes.
import { MoeError } from "../core/errors.js";
import { Tensor } from "../core/tensor.js";
import type { Group } from "./group.js";

/** `value`'s leaves by path (`a.b.0`), each as JSON. */
function leaves(value: unknown, path = "", out: Record<string, string> = {}): Record<string, string> {
  if (Array.isArray(value) && value.every((v) => typeof v === "number")) out[path] = JSON.stringify(value);
  else if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) leaves(v, path === "" ? k : `${path}.${k}`, out);
  } else out[path] = JSON.stringify(value) ?? String(value);
  return out;
}

/**
 * Checks that every rank passed an equal `value` (plain data: a config, shapes), one allGather of its JSON.
 * Otherwise every rank throws the same MoeError, naming the first differences and the ranks that differ from rank 0.
 */
export async function agreeAcrossRanks(group: Group, what: string, value: unknown): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(leaves(value)));
  const all = await group.allGather(new Tensor(bytes, [bytes.length], "uint8"));
  const decoded = all.map((t) => JSON.parse(new TextDecoder().decode(t.data)) as Record<string, string>);
  const first = decoded[0]!;
  const diffs: string[] = [];
  decoded.forEach((other, r) => {
    for (const k of new Set([...Object.keys(first), ...Object.keys(other)])) {
      if (first[k] !== other[k]) diffs.push(`${k} is ${first[k] ?? "absent"} on rank 0, ${other[k] ?? "absent"} on rank ${r}`);
    }
  });
  if (diffs.length > 0) {
    const more = diffs.length > 4 ? ` (and ${diffs.length - 4} more)` : "";
    throw new MoeError(`[group] the ranks disagree on ${what}: ${diffs.slice(0, 4).join("; ")}${more}`);
  }
}
