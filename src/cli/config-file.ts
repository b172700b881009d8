// MaxText keys from a --config file (JSON or YAML), with one-line errors that name the flag and the file.
import { parse as parseYaml, YAMLParseError } from "yaml";
import { MoeError } from "../core/errors.js";
import { readRegularFile } from "../io/files.js";
import { twinKeys } from "../moe/config.js";

/** Largest config file read (a MaxText config is a few KiB). */
const MAX_CONFIG_BYTES = 16 << 20;

/** Reads a mapping of MaxText keys from `file`, named on the command line by `flag`. */
export function readKeysFile(file: string, flag = "--config"): Record<string, unknown> {
  const fail = (problem: string): never => {
    throw new MoeError(`${flag} ${file}: ${problem}`);
  };
  const text = new TextDecoder().decode(readRegularFile(file, fail, MAX_CONFIG_BYTES));
  let obj: unknown;
  try {
    obj = parseYaml(text);
  } catch (e) {
    if (!(e instanceof YAMLParseError)) throw e;
    fail(`not valid YAML or JSON (${e.message.split("\n")[0]!.replace(/:\s*$/, "")})`);
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) fail("expected a mapping of MaxText keys");
  const keys = obj as Record<string, unknown>;
  const twins = twinKeys(keys);
  if (twins !== undefined) fail(`${twins[0]} and ${twins[1]} are the same key spelled twice; keep one`);
  return keys;
}
