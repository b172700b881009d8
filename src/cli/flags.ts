// Command-line parsing: strict numeric values (the whole text must be a number of the expected kind), and negative
// numbers taken as values.
import { parseArgs, type ParseArgsConfig } from "node:util";
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

/** A value that parseArgs would take for an option: a negative number ("-3", "-0.5", "-1e3"). */
const NEGATIVE_NUMBER = /^-(\d|\.\d)/;

/**
 * parseArgs, with `--flag -3` read as the value "-3" of a string option (parseArgs refuses a value that starts
 * with a dash as ambiguous), so that a negative number reaches the flag's own check.
 */
export function parseCommandArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  const args = config.args ?? [];
  // --help wins over the rest (`run --checkpoint --help` read --help as a missing path)
  const end = args.indexOf("--");
  if (config.options?.help !== undefined && (end < 0 ? args : args.slice(0, end)).some((a) => a === "--help" || a === "-h"))
    return parseArgs({ ...config, args: ["--help"] } as T);
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = args[i + 1];
    const option = a.startsWith("--") && !a.includes("=") ? config.options?.[a.slice(2)] : undefined;
    if (option?.type === "string" && next !== undefined && NEGATIVE_NUMBER.test(next)) {
      joined.push(`${a}=${next}`);
      i++;
    } else joined.push(a);
    if (a === "--") {
      joined.push(...args.slice(i + 1));
      break;
    }
  }
  return parseArgs({ ...config, args: joined } as T);
}

/** The options of the commands that read a checkpoint layer and write one (convert, quantize). */
export const LAYER_WRITE_OPTIONS = {
  layer: { type: "string" },
  "max-memory": { type: "string" },
  quiet: { type: "boolean" },
  force: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;
