// A config refused with a ConfigError that names the key.
import { expect } from "vitest";
import { ConfigError } from "../../src/core/errors.js";
import { moeConfig } from "../../src/moe/config.js";

/** Asserts moeConfig(keys) throws a ConfigError for `key` whose message matches `why`. */
export function refused(keys: Record<string, unknown>, key: string, why: RegExp): void {
  let err: unknown;
  try {
    moeConfig(keys);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  const ce = err as ConfigError;
  expect(ce.key).toBe(key);
  expect(ce.message).toMatch(why);
  expect(ce.message).toContain(key);
}
