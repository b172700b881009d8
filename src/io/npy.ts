// NumPy .npy files: "\x93NUMPY", version major/minor bytes, a little-endian header length (u16 for
// version 1, u32 for versions 2 and 3), a Python dict literal {'descr', 'fortran_order', 'shape'}
// padded with spaces and a newline, then the elements.
import { Tensor } from "../core/tensor.js";
import { checkOptionKeys, optionKeys } from "../core/suggest.js";
import {
  castDecoded,
  codesOf,
  decodeElements,
  defaultStorage,
  encodeElements,
  storageWidth,
  type Fail,
  type StorageDType,
} from "./codec.js";
import { writeAtomically, type OverwriteOption } from "./atomic-write.js";
import { failFor, readRegularFile } from "./files.js";
import type { ReadOptions } from "./safetensors.js";

/** "\x93NUMPY" */
const MAGIC = Uint8Array.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);
/** Header + preamble length is padded to a multiple of this, as NumPy does. */
const ALIGN = 64;

const KINDS: Record<string, StorageDType> = {
  b1: "BOOL",
  u1: "U8",
  i1: "I8",
  u2: "U16",
  i2: "I16",
  u4: "U32",
  i4: "I32",
  u8: "U64",
  i8: "I64",
  f2: "F16",
  f4: "F32",
  f8: "F64",
};

/** Deepest nesting of a header literal (NumPy writes a dict holding a tuple); deeper would overflow the stack. */
const MAX_DEPTH = 32;

/** Parses the Python literals NumPy writes in headers: dicts, tuples, lists, strings, ints, booleans. */
class PyLiteral {
  #pos = 0;
  #depth = 0;
  constructor(
    private readonly text: string,
    private readonly fail: Fail,
  ) {}

  static parse(text: string, fail: Fail): unknown {
    const p = new PyLiteral(text, fail);
    const value = p.#value();
    p.#skipSpace();
    if (p.#pos !== text.length) p.#error("unexpected text after the dict");
    return value;
  }

  #error(what: string): never {
    const shown = JSON.stringify(this.text.trimEnd().slice(0, 200));
    return this.fail(`header ${shown} is malformed: ${what} at character ${this.#pos}`);
  }

  #skipSpace(): void {
    while (/\s/.test(this.text[this.#pos] ?? "")) this.#pos++;
  }

  #eat(c: string): boolean {
    this.#skipSpace();
    if (this.text[this.#pos] !== c) return false;
    this.#pos++;
    return true;
  }

  #value(): unknown {
    const open = ["{", "(", "["].find((c) => this.#eat(c));
    if (open === undefined) {
      const c = this.text[this.#pos];
      return c === "'" || c === '"' ? this.#string(c) : this.#atom();
    }
    if (++this.#depth > MAX_DEPTH) this.#error(`nested deeper than ${MAX_DEPTH} levels`);
    const value = open === "{" ? this.#dict() : this.#sequence(open === "(" ? ")" : "]");
    this.#depth--;
    return value;
  }

  #dict(): Map<string, unknown> {
    const out = new Map<string, unknown>();
    while (!this.#eat("}")) {
      const key = this.#value();
      if (typeof key !== "string") this.#error("dict key is not a string");
      if (out.has(key)) this.#error(`duplicate key '${key}'`);
      if (!this.#eat(":")) this.#error("':' expected");
      out.set(key, this.#value());
      if (this.#eat(",")) continue;
      if (!this.#eat("}")) this.#error("',' or '}' expected");
      break;
    }
    return out;
  }

  #sequence(close: string): unknown[] {
    const out: unknown[] = [];
    while (!this.#eat(close)) {
      out.push(this.#value());
      if (this.#eat(",")) continue;
      if (!this.#eat(close)) this.#error(`',' or '${close}' expected`);
      break;
    }
    return out;
  }

  #string(quote: string): string {
    const end = this.text.indexOf(quote, this.#pos + 1);
    if (end < 0) this.#error("unterminated string");
    const s = this.text.slice(this.#pos + 1, end);
    if (s.includes("\\")) this.#error("escapes in strings are not supported");
    this.#pos = end + 1;
    return s;
  }

  #atom(): unknown {
    const m = /^(True|False|None|-?\d+)L?/.exec(this.text.slice(this.#pos));
    if (m === null) this.#error("value expected");
    this.#pos += m[0].length;
    const word = m[1]!;
    if (word === "True" || word === "False") return word === "True";
    return word === "None" ? null : Number(word);
  }
}

function parseDescr(descr: string, fail: Fail): StorageDType {
  const m = /^([<>|=]?)([biuf]\d+)$/.exec(descr);
  const storage = m === null ? undefined : KINDS[m[2]!];
  if (m === null || storage === undefined) fail(`dtype '${descr}' is not supported (${Object.keys(KINDS).join(", ")})`);
  if (m[1] === ">" && storageWidth(storage) > 1) fail(`big-endian dtype '${descr}' is not supported`);
  return storage;
}

function descrOf(storage: StorageDType): string {
  const kind = Object.keys(KINDS).find((k) => KINDS[k] === storage)!;
  return `${storageWidth(storage) === 1 ? "|" : "<"}${kind}`;
}

interface NpyHeader {
  dtype: StorageDType;
  shape: number[];
}

function parseHeader(text: string, fail: Fail): NpyHeader {
  const dict = PyLiteral.parse(text, fail);
  if (!(dict instanceof Map)) return fail(`header ${JSON.stringify(text.trim())} is not a dict`);
  const keys = [...dict.keys()].sort().join(", ");
  if (keys !== "descr, fortran_order, shape") fail(`header keys are {${keys}}, not {descr, fortran_order, shape}`);
  const descr: unknown = dict.get("descr");
  const fortran: unknown = dict.get("fortran_order");
  const shape: unknown = dict.get("shape");
  if (typeof descr !== "string") {
    fail(`descr ${JSON.stringify(descr)} is not a simple dtype (structured arrays are not supported)`);
  }
  if (typeof fortran !== "boolean") fail(`fortran_order ${JSON.stringify(fortran)} is not a boolean`);
  if (fortran) fail("fortran_order is True; only C-order arrays are supported");
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(`shape ${JSON.stringify(shape)} is not a tuple of non-negative integers`);
  }
  return { dtype: parseDescr(descr, fail), shape: shape as number[] };
}

/** Splits the file into header text and data bytes. */
function splitFile(bytes: Uint8Array, fail: Fail): { header: string; data: Uint8Array } {
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b)) fail("not an .npy file (no \\x93NUMPY magic)");
  const [major, minor] = [bytes[6]!, bytes[7]!];
  if (major < 1 || major > 3) fail(`format version ${major}.${minor} is not supported`);
  const start = major === 1 ? 10 : 12;
  if (bytes.length < start) fail(`truncated: ${bytes.length} bytes, fewer than the ${start}-byte preamble`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (start + length > bytes.length) {
    fail(`header length ${length} exceeds the ${bytes.length - start} bytes after the length field`);
  }
  const headerBytes = Buffer.from(bytes.buffer, bytes.byteOffset + start, length);
  const header = headerBytes.toString(major === 3 ? "utf8" : "latin1");
  return { header, data: bytes.subarray(start + length) };
}

function describeShape(shape: readonly number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
}

function decodeNpy(bytes: Uint8Array, file: string, options: ReadOptions = {}): Tensor {
  const fail: Fail = failFor("npy", file);
  const { header, data } = splitFile(bytes, fail);
  const { dtype, shape } = parseHeader(header, fail);
  const need = shape.reduce((a, b) => a * b, storageWidth(dtype));
  if (data.length < need) {
    const what = `shape ${describeShape(shape)} of ${dtype}`;
    fail(`truncated: ${what} needs ${need} data bytes, the file holds ${data.length}`);
  }
  if (data.length > need) fail(`${data.length - need} unexpected bytes after the ${need} data bytes`);
  // int8 / uint8: the codes as stored, as safetensors' reader keeps them
  if (options.dtype === "int8" || options.dtype === "uint8")
    return new Tensor(codesOf(dtype, data.subarray(0, need), options.dtype, fail), shape, options.dtype);
  const decoded = decodeElements(dtype, data, failFor("npy", file, `data (${dtype})`));
  const target = options.dtype ?? decoded.dtype;
  return new Tensor(castDecoded(decoded, target, fail), shape, target);
}

/**
 * Reads an .npy file (versions 1.0-3.0, C order, little-endian bool/int/uint/float elements).
 * Floats keep their values (f2 -> float32); integers become int32, and values beyond int32 are an error.
 */
export function readNpy(path: string, options: ReadOptions = {}): Tensor {
  checkOptionKeys(options, ["dtype"], "readNpy");
  return decodeNpy(readRegularFile(path, failFor("npy", path), Number.MAX_SAFE_INTEGER), path, options);
}

export interface NpyWriteOptions extends OverwriteOption {
  /** NumPy dtype to store, such as '<f2' or '|u1'; default the tensor's own ('<f4' for bfloat16). */
  descr?: string;
}

function encodeHeader(descr: string, shape: readonly number[]): Uint8Array {
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${describeShape(shape)}, }`;
  const version = dict.length + 11 > 0xffff ? 2 : 1;
  const preamble = version === 1 ? 10 : 12;
  const padded = Math.ceil((preamble + dict.length + 1) / ALIGN) * ALIGN;
  const text = `${dict}${" ".repeat(padded - preamble - dict.length - 1)}\n`;
  const out = new Uint8Array(padded);
  out.set(MAGIC);
  out.set([version, 0], 6);
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, text.length, true);
  else view.setUint32(8, text.length, true);
  out.set(Buffer.from(text, "latin1"), preamble);
  return out;
}

/** Writes a tensor as an .npy file (version 1.0, or 2.0 for headers beyond 64 KiB), C order; an existing file only with `overwrite`. */
export function writeNpy(path: string, t: Tensor, options: NpyWriteOptions = {}): void {
  checkOptionKeys(options, optionKeys<NpyWriteOptions>({ descr: true, overwrite: true }), "writeNpy");
  const fail: Fail = failFor("npy", path);
  const dtype =
    options.descr === undefined ? defaultStorage(t.dtype === "bfloat16" ? "float32" : t.dtype) : parseDescr(options.descr, fail);
  const data = encodeElements(t, dtype, fail);
  writeAtomically(path, [encodeHeader(descrOf(dtype), t.shape), data], fail, options);
}
