// The process's live temporary files and folders. While any exists, SIGINT and SIGTERM are caught: the
// temporaries are removed and the signal is raised again, so an interrupted write leaves nothing behind.
// Writes are synchronous: a signal that arrives during one waits for it to end, and is dropped if the event
// loop gets no turn before then (the write is never torn; the user presses Ctrl-C again).
import fs from "node:fs";

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
  const slash = Math.max(target.lastIndexOf("/"), target.lastIndexOf("\\"));
  return `${target.slice(0, slash + 1)}.${target.slice(slash + 1)}.${process.pid}-${counter++}.moekit-${kind}`;
}
