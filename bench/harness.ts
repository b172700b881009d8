// Benchmark helpers: fixed warm-up, median of N, peers spawned as separate processes.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Seconds per call: `warmup` calls discarded, then the median of `runs`. */
export function timeIt(f: () => unknown, runs: number, warmup = 1): { median_s: number; runs_s: number[] } {
  for (let i = 0; i < warmup; i++) f();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(seconds(f));
  return { median_s: median(times), runs_s: times };
}

/** Wall-clock seconds of one call. */
function seconds(f: () => unknown): number {
  const t0 = performance.now();
  f();
  return (performance.now() - t0) / 1000;
}

/**
 * Two functions timed alternately (a, b, a, b, ...) after one warm-up call each, so that both see the same
 * machine state (a VM's speed drifts over minutes): the medians of each, and of b/a.
 */
/**
 * `f` followed by a full garbage collection, so that a timed call pays for its own garbage and not the next one's
 * (node --expose-gc, as `npm run bench` runs; without it, `f` alone).
 */
export function withGc(f: () => unknown): () => unknown {
  const gc = (globalThis as { gc?: () => void }).gc;
  return gc === undefined
    ? f
    : () => {
        f();
        gc();
      };
}

export function timePaired(a: () => unknown, b: () => unknown, runs: number): { a_s: number; b_s: number; ratio: number } {
  a();
  b();
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < runs; i++) {
    ta.push(seconds(a));
    tb.push(seconds(b));
  }
  return { a_s: median(ta), b_s: median(tb), ratio: median(tb.map((t, i) => t / ta[i]!)) };
}

export interface PeerResult {
  peer: string;
  median_s?: number;
  skipped?: string;
  [k: string]: unknown;
}

/** Run a peer command that prints one JSON line; a missing interpreter or a failure is a skip with the reason. */
export function runPeer(name: string, cmd: string, args: string[], env: Record<string, string> = {}, timeoutS = 900): PeerResult {
  if (cmd.startsWith("/") && !existsSync(cmd)) return { peer: name, skipped: `${cmd} not found` };
  try {
    const out = execFileSync(cmd, args, {
      encoding: "utf8",
      env: { ...process.env, ...env },
      timeout: timeoutS * 1000,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const line = out.trim().split("\n").at(-1) ?? "";
    const r = JSON.parse(line) as PeerResult;
    return { ...r, peer: name };
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    const why = (err.stderr ?? err.message).trim().split("\n").at(-1) ?? "failed";
    return { peer: name, skipped: why.slice(0, 200) };
  }
}
