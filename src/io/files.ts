import fs from "node:fs";
import { zeroed } from "../core/dtype.js";
import { MoeError } from "../core/errors.js";
import type { Fail } from "./codec.js";

export type FileFormat = "safetensors" | "npy";

/** A checkpoint file that cannot be read or written. The message reads `[format] file: problem`. */
export class CheckpointError extends MoeError {
  override name = "CheckpointError";
  constructor(
    readonly format: FileFormat,
    readonly file: string,
    readonly problem: string,
    options?: ErrorOptions,
  ) {
    super(`[${format}] ${file}: ${problem}`, options);
  }
}

/** A `Fail` that throws a CheckpointError for `file`, optionally prefixing the problem with `context`. */
export function failFor(format: FileFormat, file: string, context?: string): Fail {
  return (problem) => {
    throw new CheckpointError(format, file, context === undefined ? problem : `${context}: ${problem}`);
  };
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function systemMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Opens `file` for reading. Only a regular file is opened (a FIFO or device would block or never end). */
export function openForRead(format: FileFormat, file: string): number {
  return openRegular(file, failFor(format, file));
}

/** Opens `file` for reading, or fails naming why; O_NONBLOCK keeps a FIFO from blocking the open itself. */
export function openRegular(file: string, fail: Fail): number {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    fail(`cannot open (${systemMessage(e)})`);
  }
  const stat = fs.fstatSync(fd);
  if (!stat.isFile()) {
    fs.closeSync(fd);
    fail(stat.isDirectory() ? "is a folder, not a file" : "is not a regular file (a FIFO, socket or device)");
  }
  return fd;
}

/** The whole of a regular file of at most `maxBytes` bytes. */
export function readRegularFile(file: string, fail: Fail, maxBytes: number): Uint8Array {
  const fd = openRegular(file, fail);
  try {
    const length = fs.fstatSync(fd).size;
    if (length > maxBytes) fail(`is ${length} bytes, over the limit of ${maxBytes}`);
    return readExactly(fd, 0, length, fail);
  } finally {
    fs.closeSync(fd);
  }
}

/** Deepest nesting accepted in JSON text (checkpoint headers, index and config files need a handful). */
export const MAX_JSON_DEPTH = 64;

/** Fails if `text` nests arrays or objects deeper than `maxDepth` (JSON.parse would overflow the stack). */
export function checkJsonDepth(text: string, fail: Fail, maxDepth = MAX_JSON_DEPTH): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) fail(`JSON nested deeper than ${maxDepth} levels (at character ${i})`);
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
}

/** Largest single read; Node refuses lengths of 2 GiB and more. */
const MAX_READ = 1 << 30;

/** Reads exactly `length` bytes at `position`; a file that ends early is an error, never a short result. */
export function readExactly(fd: number, position: number, length: number, fail: Fail, into?: Uint8Array): Uint8Array {
  const out = into ?? zeroed(Uint8Array, length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, out, done, Math.min(length - done, MAX_READ), position + done);
    if (n === 0) fail(`truncated: ${length} bytes expected at offset ${position}, the file ends after ${done}`);
    done += n;
  }
  return out;
}
