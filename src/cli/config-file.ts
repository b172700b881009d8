// MaxText keys from a --config file (JSON or YAML), with one-line errors that name the flag and the file.
import { parseDocument } from "yaml";
import { MoeError } from "../core/errors.js";
import { readRegularFile } from "../io/files.js";
import { twinKeys } from "../moe/config.js";

/** Largest config file read (a MaxText config is a few KiB). */
const MAX_CONFIG_BYTES = 16 << 20;

const firstLine = (message: string): string => message.split("\n")[0]!.replace(/:\s*$/, "");

/**
 * The YAML (or JSON) text as plain values, read as YAML 1.1 as MaxText's loader (PyYAML) reads its configs: `10_000`
 * is a number and `yes` / `no` are booleans. Everything the parser reports is an error: syntax errors, warnings (an
 * unknown tag) and what it throws while building the values (an alias bomb, an unresolved alias).
 */
function parseKeys(text: string, fail: (problem: string) => never): unknown {
  const doc = parseDocument(text, { uniqueKeys: true, logLevel: "error", version: "1.1" });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) fail(`not valid YAML or JSON (${firstLine(problem.message)})`);
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    if (e instanceof MoeError || !(e instanceof Error)) throw e;
    return fail(`not valid YAML or JSON (${firstLine(e.message)})`);
  }
}

/** Reads a mapping of MaxText keys from `file`, named on the command line by `flag`. */
export function readKeysFile(file: string, flag = "--config"): Record<string, unknown> {
  const fail = (problem: string): never => {
    throw new MoeError(`${flag} ${file}: ${problem}`);
  };
  const obj = parseKeys(new TextDecoder().decode(readRegularFile(file, fail, MAX_CONFIG_BYTES)), fail);
  // a plain mapping only: a top-level !!set or !!omap is an object too
  if (obj === null || typeof obj !== "object" || Object.getPrototypeOf(obj) !== Object.prototype)
    fail("expected a mapping of MaxText keys");
  const keys = obj as Record<string, unknown>;
  const twins = twinKeys(keys);
  if (twins !== undefined) fail(`${twins[0]} and ${twins[1]} are the same key spelled twice; keep one`);
  return keys;
}
