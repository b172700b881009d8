// N ranks on worker threads (real parallel execution): each runs `module`'s default export
// `(group, args) => result` with a PortGroup; tensors travel by structured clone.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { MessageChannel, Worker, type MessagePort } from "node:worker_threads";
import { MoeError } from "../core/errors.js";
import { decode, encode } from "./wire.js";
import { PEER_GONE } from "./port-group.js";
import { setTimeout as sleep } from "node:timers/promises";

/** The compiled worker entry: next to this file when built, else the package's dist/. */
function entryPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const p of [join(here, "worker-entry.js"), join(here, "../../dist/src/parallel/worker-entry.js")]) if (existsSync(p)) return p;
  throw new MoeError("[worker_group] worker-entry.js not found: build moekit (npm run build) first");
}

/**
 * Run `module`'s default export on `size` worker threads, one rank each, and collect the results in rank
 * order. A rank that throws fails the whole run (the other workers are terminated). Each rank has its own native
 * pool of CPUs / size threads (at least one) unless MOEKIT_THREADS sets the count.
 */
export async function runWorkers<T>(size: number, module: string | URL, args?: unknown): Promise<T[]> {
  if (!Number.isInteger(size) || size < 1) throw new MoeError(`[worker_group] size must be a positive integer, got ${size}`);
  const ports: (MessagePort | undefined)[][] = Array.from({ length: size }, () => new Array<MessagePort | undefined>(size).fill(undefined));
  for (let i = 0; i < size; i++) {
    for (let j = i + 1; j < size; j++) {
      const { port1, port2 } = new MessageChannel();
      ports[i]![j] = port1;
      ports[j]![i] = port2;
    }
  }
  const mod = module instanceof URL ? module.href : module;
  const workers = ports.map(
    (p, rank) =>
      new Worker(entryPath(), {
        workerData: { rank, size, module: mod, args: encode(args), ports: p },
        transferList: p.filter((x): x is MessagePort => x !== undefined),
      }),
  );
  const results = workers.map(
    (w, rank) =>
      new Promise<T>((resolve, reject) => {
        w.once("message", (m: { ok: boolean; value?: unknown; error?: string }) =>
          m.ok ? resolve(decode(m.value) as T) : reject(new MoeError(`[worker_group] rank ${rank}: ${m.error ?? "failed"}`)),
        );
        w.once("error", (e) => reject(new MoeError(`[worker_group] rank ${rank}: ${e.message}`)));
      }),
  );
  try {
    return await Promise.all(results);
  } catch (first) {
    // a failed rank closes its ports, so the ranks waiting on it fail too: report its own failure, given a moment
    const settled = await Promise.race([Promise.allSettled(results), sleep(1000, undefined, { ref: false })]);
    const own = settled?.find((r): r is PromiseRejectedResult => r.status === "rejected" && !String(r.reason).includes(PEER_GONE));
    throw own?.reason ?? first;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
