// --set KEY=VALUE overrides, merged onto MaxText keys under their snake_case names.
import { MoeError } from "../core/errors.js";
import { snakeCase } from "../moe/config.js";
import { parseValue } from "./summary.js";

/** The --set pairs as snake_case MaxText keys (numExperts=4 sets num_experts). */
export function parseSets(sets: readonly string[] | undefined): Record<string, unknown> {
  // Object.fromEntries makes own keys: `out[k] = v` with k "__proto__" would set the prototype instead
  return Object.fromEntries(
    (sets ?? []).map((kv) => {
      const i = kv.indexOf("=");
      if (i <= 0) throw new MoeError(`--set expects KEY=VALUE, got "${kv}"`);
      return [snakeCase(kv.slice(0, i)), parseValue(kv.slice(i + 1))];
    }),
  );
}

/** `keys` under snake_case names (readKeysFile has refused twins), with `overrides` on top. */
export function withOverrides(keys: Record<string, unknown>, overrides: Record<string, unknown>): Record<string, unknown> {
  return { ...Object.fromEntries(Object.entries(keys).map(([k, v]) => [snakeCase(k), v])), ...overrides };
}
