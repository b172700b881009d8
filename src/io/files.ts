import fs from "node:fs";
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

/** Opens `file` for reading, turning a system error into a CheckpointError. */
export function openForRead(format: FileFormat, file: string): number {
  try {
    return fs.openSync(file, "r");
  } catch (e) {
    throw new CheckpointError(format, file, `cannot open (${systemMessage(e)})`, { cause: e });
  }
}

/** Largest single read; Node refuses lengths of 2 GiB and more. */
const MAX_READ = 1 << 30;

/** Reads exactly `length` bytes at `position`; a file that ends early is an error, never a short result. */
export function readExactly(fd: number, position: number, length: number, fail: Fail): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, out, done, Math.min(length - done, MAX_READ), position + done);
    if (n === 0) fail(`truncated: ${length} bytes expected at offset ${position}, the file ends after ${done}`);
    done += n;
  }
  return out;
}
