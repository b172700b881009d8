// "did you mean" for a misspelled name: the closest of the known names by edit distance, if it is close enough.
import { MoeError } from "./errors.js";

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

/** Longest unknown name that gets a "did you mean" (the edit distance costs its length times each known name's). */
const MAX_SUGGEST_LENGTH = 64;

/** ` (did you mean X?)` for the known name within 3 edits of `name` (case and `_` ignored), else "". */
export function didYouMean(name: string, known: readonly string[]): string {
  if (name.length > MAX_SUGGEST_LENGTH) return "";
  const norm = (s: string): string => s.toLowerCase().replaceAll("_", "");
  const best = known.map((k) => [k, editDistance(norm(name), norm(k))] as const).sort((x, y) => x[1] - y[1])[0];
  return best !== undefined && best[1] <= 3 ? ` (did you mean ${best[0]}?)` : "";
}

/**
 * Refuses an options object that is not an object, or that holds a key `known` lacks (a misspelled option is
 * otherwise its default, silently): `[where] unknown option checkfinite (did you mean checkFinite?)`. `noun`
 * names what the keys are ("field" for a weights object).
 */
export function checkOptionKeys(opts: unknown, known: readonly string[], where: string, noun = "option"): void {
  if (opts === undefined) return;
  if (typeof opts !== "object" || opts === null || Array.isArray(opts))
    throw new MoeError(
      `[${where}] ${noun}s must be an object, got ${opts === null ? "null" : Array.isArray(opts) ? "an array" : typeof opts}`,
    );
  for (const k of Object.keys(opts))
    if (!known.includes(k)) throw new MoeError(`[${where}] unknown ${noun} ${k}${didYouMean(k, known)} (${noun}s: ${known.join(", ")})`);
}

/** An options interface's keys, all of them (the compiler checks the record against T): checkOptionKeys' `known`. */
export const optionKeys = <T>(keys: { [K in keyof Required<T>]: true }): readonly string[] => Object.keys(keys);
