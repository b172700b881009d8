// Per-primitive timing: which backend ran each primitive, how often and for how long (MOEKIT_TRACE=1, or
// startTrace() / stopTrace() in the API), so anyone can check what still runs on the reference kernels.
import type { Tensor } from "../core/tensor.js";
import type { Prim } from "../prims/prims.js";

export interface TraceEntry {
  prim: Prim;
  backend: string;
  /** the inputs' dtypes */
  dtypes: string;
  calls: number;
  ms: number;
}

let table: Map<string, TraceEntry> | undefined;

/** Start (or restart) timing every primitive. */
export function startTrace(): void {
  table = new Map();
}

/** Stop timing; the entries since startTrace(), slowest first. */
export function stopTrace(): TraceEntry[] {
  const entries = [...(table?.values() ?? [])].sort((a, b) => b.ms - a.ms);
  table = undefined;
  return entries;
}

export function tracing(): boolean {
  return table !== undefined;
}

export function recordPrim(prim: Prim, backend: string, ins: readonly Tensor[], ms: number): void {
  if (table === undefined) return;
  const dtypes = ins.map((t) => t.dtype).join(",");
  const key = `${prim}|${backend}|${dtypes}`;
  const e = table.get(key) ?? { prim, backend, dtypes, calls: 0, ms: 0 };
  e.calls++;
  e.ms += ms;
  table.set(key, e);
}

/** The entries as a table: primitive, backend, input dtypes, calls, total ms, share of the total. */
export function formatTrace(entries: readonly TraceEntry[]): string {
  const total = entries.reduce((s, e) => s + e.ms, 0);
  const lines = [`moekit trace: ${entries.length} primitive kinds, ${total.toFixed(1)} ms in kernels`];
  lines.push(`${"primitive".padEnd(16)} ${"backend".padEnd(7)} ${"inputs".padEnd(32)} ${"calls".padStart(6)} ${"ms".padStart(10)}  share`);
  for (const e of entries) {
    const share = total > 0 ? `${((100 * e.ms) / total).toFixed(1)}%` : "-";
    lines.push(
      `${e.prim.padEnd(16)} ${e.backend.padEnd(7)} ${e.dtypes.padEnd(32)} ${String(e.calls).padStart(6)} ${e.ms.toFixed(2).padStart(10)}  ${share}`,
    );
  }
  return lines.join("\n");
}
