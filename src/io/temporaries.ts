// The process's live temporary files and folders. While any exists, SIGINT and SIGTERM are caught: the
// temporaries are removed and the signal is raised again, so an interrupted write leaves nothing behind.
// Writes are synchronous: a signal that arrives during one waits for it to end, and is dropped if the event
// loop gets no turn before then (the write is never torn; the user presses Ctrl-C again).
import fs from "node:fs";
import path from "node:path";

const live = new Set<string>();
const SIGNALS = ["SIGINT", "SIGTERM"] as const;

function setHandlers(on: boolean): void {
  for (const s of SIGNALS) {
    if (on) process.on(s, onSignal);
    else process.off(s, onSignal);
  }
}

function onSignal(signal: NodeJS.Signals): void {
  for (const p of live) fs.rmSync(p, { recursive: true, force: true });
  live.clear();
  setHandlers(false);
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

/** Registers `p` (a file or folder) for removal if the process is interrupted; the result unregisters it. */
export function trackTemporary(p: string): () => void {
  if (live.size === 0) setHandlers(true);
  live.add(p);
  return () => {
    if (live.delete(p) && live.size === 0) setHandlers(false);
  };
}

let counter = 0;

/** A name for a temporary beside `target` (same folder, so a rename onto `target` is atomic), hidden and recognisable. */
export function temporaryName(target: string, kind: "tmp" | "old" = "tmp"): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}-${counter++}.moekit-${kind}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The temporaries of `kind` beside `target` that processes no longer running left behind (a SIGKILL cannot be caught). */
function staleTemporaries(target: string, kind: "tmp" | "old"): string[] {
  const folder = path.dirname(path.resolve(target));
  const prefix = `.${path.basename(target)}.`;
  let names: string[];
  try {
    names = fs.readdirSync(folder);
  } catch {
    return [];
  }
  const pattern = new RegExp(`^(\\d+)-\\d+\\.moekit-${kind}$`);
  return names.flatMap((name) => {
    const m = name.startsWith(prefix) ? pattern.exec(name.slice(prefix.length)) : null;
    return m !== null && Number(m[1]) !== process.pid && !isAlive(Number(m[1])) ? [path.join(folder, name)] : [];
  });
}

/**
 * Removes the temporaries that writes to `target` by processes no longer running left behind. A `.moekit-old`
 * folder (a replaced checkpoint, kept until its replacement is in place) is the only copy of `target` when the
 * replace was cut between its two renames: it is renamed back then, and removed once `target` exists.
 */
export function removeStaleTemporaries(target: string): void {
  for (const p of staleTemporaries(target, "tmp")) fs.rmSync(p, { recursive: true, force: true });
  for (const p of staleTemporaries(target, "old")) {
    if (fs.existsSync(target)) fs.rmSync(p, { recursive: true, force: true });
    else fs.renameSync(p, target);
  }
}
