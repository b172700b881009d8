// The memory budget: what moekit may allocate for one layer (weights, activations, workspaces), checked against
// an estimate before allocating, so that a huge config is a one-line error instead of an allocation failure or
// a machine swapping. Default: a fraction of the memory free when asked; setMemoryBudget (the CLI's --max-memory)
// fixes it.
import os from "node:os";
import { MoeError } from "./errors.js";

const FREE_FRACTION = 0.75;

let fixed: { bytes: number; source: string } | undefined;

/** Fix the budget to `bytes` (`source` names where it came from, e.g. "--max-memory 8e9"); undefined restores the default. */
export function setMemoryBudget(bytes: number | undefined, source = "setMemoryBudget()"): void {
  if (bytes !== undefined && !(Number.isFinite(bytes) && bytes > 0)) {
    throw new MoeError(`[memory] the budget must be a positive number of bytes, got ${bytes}`);
  }
  fixed = bytes === undefined ? undefined : { bytes, source };
}

/** The budget in bytes and where it comes from. */
export const memoryBudget = (): { bytes: number; source: string } => fixed ?? freeBudget(Infinity);

// os.freemem() reads /proc/meminfo: tens of microseconds, much of a small decode step. A reading serves the estimates
// under half of it for a second; one nearer the budget reads again.
let reading: { bytes: number; source: string } | undefined;
let readAt = 0;
function freeBudget(total: number): { bytes: number; source: string } {
  if (reading !== undefined && Date.now() - readAt < 1000 && total <= reading.bytes / 2) return reading;
  readAt = Date.now();
  return (reading = { bytes: Math.floor(os.freemem() * FREE_FRACTION), source: `${FREE_FRACTION * 100}% of free memory` });
}

/** "1.23 GB" */
function formatBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? n : n.toPrecision(3)} ${units[i]}`;
}

/** Bytes by part ("weights", "activations", ...): what `checkMemory` adds up and names. */
export type MemoryEstimate = Readonly<Record<string, number>>;

/** Throws a MoeError naming the estimate and how to raise the budget when `estimate` is over the budget. */
export function checkMemory(where: string, estimate: MemoryEstimate): void {
  const total = Object.values(estimate).reduce((a, b) => a + b, 0);
  const budget = fixed ?? freeBudget(total);
  if (total <= budget.bytes) return;
  const parts = Object.entries(estimate)
    .filter(([, b]) => b > 0)
    .map(([k, b]) => `${k} ${formatBytes(b)}`)
    .join(", ");
  throw new MoeError(
    `[${where}] needs about ${formatBytes(total)} (${parts}), over the memory budget of ${formatBytes(budget.bytes)} (${budget.source}); ` +
      `raise it with --max-memory BYTES (setMemoryBudget in the API)`,
  );
}
