// Hostile inputs made by fast-check for the readers' fuzz tests: random bytes, byte-level mutations of a valid
// file (flip, overwrite, insert, delete, truncate), and hostile values for the fields of a valid header or config.
import fc from "fast-check";
import { MoeError } from "../../src/core/errors.js";

/** One edit of a byte string; positions are fractions of its length, so that one edit fits any input. */
type Edit =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "set"; at: number; byte: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; length: number }
  | { kind: "truncate"; at: number };

/** Bytes that parsers branch on: JSON and YAML punctuation, quotes, digits, NUL, 0xff, high bits. */
const SPECIAL_BYTES = [0, 0x0a, 0x20, 0x22, 0x27, 0x28, 0x29, 0x2c, 0x2d, 0x30, 0x31, 0x39, 0x3a, 0x5b, 0x5d, 0x7b, 0x7d, 0x7f, 0x80, 0xff];

const position = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: position, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({
    kind: fc.constant("set" as const),
    at: position,
    byte: fc.oneof(fc.constantFrom(...SPECIAL_BYTES), fc.integer({ min: 0, max: 255 })),
  }),
  fc.record({ kind: fc.constant("insert" as const), at: position, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant("delete" as const), at: position, length: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant("truncate" as const), at: position }),
);

function applyEdit(bytes: Uint8Array, e: Edit): Uint8Array {
  const at = Math.floor(e.at * bytes.length);
  switch (e.kind) {
    case "flip": {
      const out = Uint8Array.from(bytes); // a copy (Buffer's slice() is a view)
      if (out.length > 0) out[at] = out[at]! ^ (1 << e.bit);
      return out;
    }
    case "set": {
      const out = Uint8Array.from(bytes);
      if (out.length > 0) out[at] = e.byte;
      return out;
    }
    case "insert":
      return Buffer.concat([bytes.subarray(0, at), e.bytes, bytes.subarray(at)]);
    case "delete":
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + e.length)]);
    case "truncate":
      return Uint8Array.from(bytes.subarray(0, at));
  }
}

/** `valid` with one to four edits. */
export function mutatedBytes(valid: Uint8Array): fc.Arbitrary<Uint8Array> {
  return fc.array(edit, { minLength: 1, maxLength: 4 }).map((edits) => edits.reduce(applyEdit, valid));
}

/** Numbers that sit on a check's edge: 0, -1, fractions, int32 and 2^53 limits, overflowing sizes. */
export const EDGE_NUMBERS = [
  0,
  1,
  2,
  3,
  -1,
  -2,
  0.5,
  1.5,
  255,
  256,
  65536,
  2 ** 24,
  2 ** 24 + 1,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  2 ** 53 + 2,
  1e12,
  1e300,
];

/** JSON values a hostile file may hold where a size, a list, a string or an object is expected. */
export const hostileJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom<unknown>(...EDGE_NUMBERS) },
  { weight: 2, arbitrary: fc.array(fc.oneof(fc.integer({ min: 0, max: 8 }), fc.constantFrom(...EDGE_NUMBERS)), { maxLength: 5 }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(null, true, false, "", "8", [], {}, [[1]], { a: 1 }, "x".repeat(5000)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);

/** Keys of Object.prototype, which a lookup with `in` or `[key]` would find in any table. */
export const PROTOTYPE_KEYS = ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf"];

/** What one reader call ended as: returned, or refused with a typed error. */
export interface Outcome {
  ok: boolean;
  /** the message with the file's path and the numbers blanked: which check refused the input */
  check?: string;
}

/** Longest time one input may take (a generous bound: the machine is shared; a hang never ends). */
const MAX_INPUT_MS = 5_000;

/**
 * Runs `read` on one input. It must return, or throw a MoeError whose message is one line; anything else
 * (a TypeError, a RangeError from a deep recursion, a message over several lines) fails the property.
 */
export function outcomeOf(read: () => void, file: string): Outcome {
  const t0 = performance.now();
  let outcome: Outcome = { ok: true };
  try {
    read();
  } catch (e) {
    if (!(e instanceof MoeError)) throw new Error(`not a typed error: ${String(e)}`, { cause: e });
    if (/[\n\r]/.test(e.message)) throw new Error(`message over several lines: ${JSON.stringify(e.message)}`);
    outcome = { ok: false, check: e.message.split(file).join("FILE").replace(/\d+/g, "N") };
  }
  const ms = performance.now() - t0;
  if (ms > MAX_INPUT_MS) throw new Error(`one input took ${ms.toFixed(0)} ms`);
  return outcome;
}
