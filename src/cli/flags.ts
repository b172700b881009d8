// Strict parsing of numeric command-line values: the whole text must be a number of the expected kind.
import { MoeError } from "../core/errors.js";
import { setMemoryBudget } from "../core/memory.js";

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** An integer in [min, max] (exponent notation such as 2e8 allowed); anything else names the flag. */
export function intFlag(text: string, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = NUMBER.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    throw new MoeError(`${flag} must be an integer ${range}, got ${JSON.stringify(text)}`);
  }
  return n;
}

/** intFlag for an optional flag. */
export function optionalIntFlag(text: string | undefined, flag: string, min: number): number | undefined {
  return text === undefined ? undefined : intFlag(text, flag, min);
}

/** Applies --max-memory BYTES (the default budget when absent: the budget is per command). */
export function applyMaxMemory(text: string | undefined): void {
  setMemoryBudget(optionalIntFlag(text, "--max-memory", 1), `--max-memory ${text}`);
}

/** The options of the commands that read a checkpoint layer and write one (convert, quantize). */
export const LAYER_WRITE_OPTIONS = {
  layer: { type: "string" },
  "max-memory": { type: "string" },
  quiet: { type: "boolean" },
  force: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;
