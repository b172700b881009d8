// Writes that never leave a partial output: data goes to a temporary beside the destination, renamed into place.
import fs from "node:fs";
import path from "node:path";
import type { Fail } from "./codec.js";
import { systemMessage } from "./files.js";
import { removeStaleTemporaries, temporaryName, trackTemporary } from "./temporaries.js";

export interface OverwriteOption {
  /** replace an existing output (default false: an existing output is an error) */
  overwrite?: boolean;
}

/** Largest single write; Node refuses lengths of 2 GiB and more. */
const MAX_WRITE = 1 << 30;

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) {
    done += fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, MAX_WRITE));
  }
}

function checkFolder(target: string, fail: Fail): void {
  const folder = path.dirname(path.resolve(target));
  let stat: fs.Stats;
  try {
    stat = fs.statSync(folder);
  } catch {
    fail(`the folder ${folder} does not exist`);
  }
  if (!stat.isDirectory()) fail(`${folder} is not a folder`);
}

/** Refuses an existing `file` unless `overwrite`; a folder in its place is refused always. */
function checkFileTarget(file: string, overwrite: boolean, fail: Fail): void {
  checkFolder(file, fail);
  const stat = fs.statSync(file, { throwIfNoEntry: false });
  if (stat === undefined) return;
  if (stat.isDirectory()) fail("is a folder, not a file");
  if (!overwrite) fail("already exists (pass --force, or overwrite: true, to replace it)");
}

/**
 * Puts the finished temporary at `file` only if nothing is there: a file made there while this one was written (the
 * existence check ran before it) is refused, not replaced. A hard link fails atomically where `file` exists; a
 * filesystem without hard links gets a second check, then the rename.
 */
function placeNew(tmp: string, file: string, fail: Fail): void {
  try {
    fs.linkSync(tmp, file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EEXIST") fail("already exists (it appeared while this was written; pass --force, or overwrite: true, to replace it)");
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "EXDEV") throw e;
    if (fs.existsSync(file)) fail("already exists (it appeared while this was written; pass --force, or overwrite: true, to replace it)");
    fs.renameSync(tmp, file);
    return;
  }
  fs.rmSync(tmp, { force: true });
}

/**
 * Writes the chunks to `file` through a temporary file renamed into place, so that a failure (including one
 * thrown while the chunks are produced) or an interruption leaves no partial file behind.
 */
export function writeAtomically(file: string, chunks: Iterable<Uint8Array>, fail: Fail, opts: OverwriteOption = {}): void {
  checkFileTarget(file, opts.overwrite === true, fail);
  removeStaleTemporaries(file);
  const tmp = temporaryName(file);
  const untrack = trackTemporary(tmp);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, "wx");
    for (const chunk of chunks) writeAll(fd, chunk);
    fs.closeSync(fd);
    fd = undefined;
    if (opts.overwrite === true) fs.renameSync(tmp, file);
    else placeNew(tmp, file, fail);
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    if (e instanceof Error && "code" in e && "syscall" in e) fail(`cannot write (${systemMessage(e)})`);
    throw e;
  } finally {
    untrack();
  }
}

/** Files a checkpoint folder may hold and that `overwrite` may therefore replace. */
function isCheckpointFile(name: string): boolean {
  return name.endsWith(".safetensors") || name.endsWith(".safetensors.index.json") || name === "config.json";
}

const shown = (names: string[]): string => `${names.slice(0, 3).join(", ")}${names.length > 3 ? ", ..." : ""}`;

/** Refuses (through `fail`) a folder `dir` that holds files other than a checkpoint's: `overwrite` never replaces it. */
export function refuseForeignFiles(dir: string, fail: Fail): void {
  const others = fs.readdirSync(dir).filter((e) => !isCheckpointFile(e));
  if (others.length > 0) fail(`holds files that are not a checkpoint's (${shown(others)}); refusing to replace it`);
}

function checkFolderTarget(dir: string, overwrite: boolean, fail: Fail): boolean {
  checkFolder(dir, fail);
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  if (stat === undefined) return false;
  if (!stat.isDirectory()) fail("exists and is not a folder");
  const entries = fs.readdirSync(dir);
  if (entries.length === 0) return false;
  if (!overwrite) fail(`already exists and holds ${shown(entries)} (pass --force, or overwrite: true, to replace it)`);
  refuseForeignFiles(dir, fail);
  return true;
}

/**
 * Makes the folder `dir` as a whole: `fill` writes into a temporary folder beside it, which is then renamed
 * to `dir`. A non-empty `dir` is replaced only with `overwrite`, and only if it holds nothing but checkpoint
 * files. `fill` gets the temporary folder; its result is returned.
 */
export function writeFolderAtomically<T>(dir: string, fill: (tmpDir: string) => T, fail: Fail, opts: OverwriteOption = {}): T {
  removeStaleTemporaries(dir); // first: it may restore `dir` from a replace that was killed between its renames
  const replace = checkFolderTarget(dir, opts.overwrite === true, fail);
  const tmp = temporaryName(dir);
  const untrack = trackTemporary(tmp);
  try {
    fs.mkdirSync(tmp);
    const result = fill(tmp);
    if (replace) {
      const old = temporaryName(dir, "old");
      fs.renameSync(dir, old);
      try {
        fs.renameSync(tmp, dir);
      } catch (e) {
        fs.renameSync(old, dir);
        throw e;
      }
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(tmp, dir);
    }
    return result;
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (e instanceof Error && "code" in e && "syscall" in e) fail(`cannot write (${systemMessage(e)})`);
    throw e;
  } finally {
    untrack();
  }
}
