// safetensors: an 8-byte little-endian u64 header length N, N bytes of JSON header mapping tensor names to
// {dtype, shape, data_offsets} (plus an optional "__metadata__" string map), then the data buffer, which
// the tensors' [begin, end) offsets must tile exactly.
import fs from "node:fs";
import type { DType } from "../core/dtype.js";
import { Tensor } from "../core/tensor.js";
import { checkOptionKeys, optionKeys } from "../core/suggest.js";
import {
  STORAGE_DTYPES,
  castDecoded,
  codesOf,
  decodeElements,
  defaultStorage,
  encodeElements,
  isStorageDType,
  storageWidth,
  type Fail,
  type StorageDType,
} from "./codec.js";
import { writeAtomically, type OverwriteOption } from "./atomic-write.js";
import { checkJsonDepth, failFor, isObject, openForRead, readExactly } from "./files.js";

/** The reference implementation refuses larger headers, to bound the JSON it parses. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = "__metadata__";
/** dtypes of the spec that moekit cannot convert, reported as unsupported rather than unknown. */
const UNSUPPORTED_DTYPES = ["F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"];

/** Where a tensor lies in a safetensors file. */
export interface TensorInfo {
  readonly dtype: StorageDType;
  readonly shape: readonly number[];
  /** [begin, end) of the tensor's bytes, relative to the start of the data buffer. */
  readonly dataOffsets: readonly [number, number];
}

/** A tensor's bytes as stored: little-endian elements of `dtype`, row-major. */
export interface RawTensor {
  readonly dtype: StorageDType;
  readonly shape: readonly number[];
  readonly bytes: Uint8Array;
}

export interface ReadOptions {
  /**
   * moekit dtype of the result. By default floats keep their values exactly (F32/F16 -> float32,
   * BF16 -> bfloat16, F64 -> float64) and integers become int32. int8 / uint8 keep I8 / U8 quantized codes as
   * they are stored (one byte each) and refuse other storage types.
   */
  dtype?: DType;
}

export const READ_OPTIONS = optionKeys<ReadOptions>({ dtype: true });
export const SAVE_OPTIONS = optionKeys<SaveOptions>({ metadata: true, dtypes: true, overwrite: true });

export interface SaveOptions extends OverwriteOption {
  /** String pairs stored under `__metadata__`. */
  metadata?: Record<string, string>;
  /** Storage dtype by tensor name; the rest keep theirs (float32 F32, float64 F64, bfloat16 BF16, int32 I32). */
  dtypes?: Record<string, StorageDType>;
}

interface Header {
  /** In data-buffer order. */
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

function parseJsonObject(bytes: Uint8Array, fail: Fail): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    fail("header is not valid UTF-8");
  }
  if (!text.startsWith("{")) fail(`header does not start with '{' (it starts ${JSON.stringify(text.slice(0, 16))})`);
  checkJsonDepth(text, (problem) => fail(`header ${problem}`));
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(value)) fail("header is not a JSON object");
  return value;
}

function parseMetadata(value: unknown, fail: Fail): Record<string, string> {
  if (!isObject(value)) fail(`${METADATA_KEY} is not an object of strings`);
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") fail(`${METADATA_KEY} value of '${k}' is ${JSON.stringify(v)}, not a string`);
  }
  return value as Record<string, string>;
}

function parseCounts(value: unknown, what: string, fail: Fail): number[] {
  if (!Array.isArray(value) || !value.every((v) => Number.isSafeInteger(v) && v >= 0)) {
    fail(`${what} ${JSON.stringify(value)} is not a list of non-negative integers`);
  }
  return value as number[];
}

function parseDType(value: unknown, where: string, fail: Fail): StorageDType {
  if (typeof value === "string" && isStorageDType(value)) return value;
  if (typeof value === "string" && UNSUPPORTED_DTYPES.includes(value)) {
    fail(`${where}: dtype ${value} is not supported`);
  }
  return fail(`${where}: unknown dtype ${JSON.stringify(value)} (known: ${STORAGE_DTYPES.join(", ")})`);
}

function byteSize(shape: readonly number[], dtype: StorageDType, where: string, fail: Fail): number {
  if (shape.includes(0)) return 0;
  let n = storageWidth(dtype);
  for (const d of shape) n *= d;
  if (!Number.isSafeInteger(n)) fail(`${where}: shape [${shape.join(", ")}] is too large`);
  return n;
}

function parseEntry(name: string, value: unknown, fail: Fail): TensorInfo {
  const where = `tensor '${name}'`;
  if (!isObject(value)) fail(`${where}: entry ${JSON.stringify(value)} is not an object`);
  const dtype = parseDType(value.dtype, where, fail);
  const shape = parseCounts(value.shape, `${where}: shape`, fail);
  const offsets = parseCounts(value.data_offsets, `${where}: data_offsets`, fail);
  const [begin, end] = offsets;
  if (offsets.length !== 2 || begin === undefined || end === undefined || end < begin) {
    fail(`${where}: data_offsets ${JSON.stringify(offsets)} is not [begin, end] with begin <= end`);
  }
  const need = byteSize(shape, dtype, where, fail);
  if (need !== end - begin) {
    const held = `data_offsets [${begin}, ${end}] hold ${end - begin}`;
    fail(`${where}: shape [${shape.join(", ")}] of ${dtype} needs ${need} bytes but ${held}`);
  }
  return { dtype, shape: Object.freeze(shape), dataOffsets: [begin, end] };
}

/** The tensors in buffer order, which must tile [0, bufferLength) without holes or overlaps. */
function checkLayout(tensors: Map<string, TensorInfo>, bufferLength: number, fail: Fail): Map<string, TensorInfo> {
  const sorted = [...tensors].sort(([, a], [, b]) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let cursor = 0;
  let previous = "";
  for (const [name, { dataOffsets }] of sorted) {
    const [begin, end] = dataOffsets;
    if (begin < cursor) {
      const detail = `'${name}' begins at byte ${begin}, '${previous}' ends at ${cursor}`;
      fail(`tensors '${previous}' and '${name}' overlap: ${detail}`);
    }
    if (begin > cursor) {
      fail(`bytes [${cursor}, ${begin}) of the data buffer belong to no tensor (holes are not allowed)`);
    }
    cursor = end;
    previous = name;
  }
  if (cursor > bufferLength) {
    const detail = `ends at byte ${cursor} of the data buffer, which holds only ${bufferLength} bytes`;
    fail(`truncated: tensor '${previous}' ${detail}`);
  }
  if (cursor < bufferLength) {
    fail(`${bufferLength - cursor} bytes after the last tensor belong to no tensor (holes are not allowed)`);
  }
  return new Map(sorted);
}

function parseHeader(bytes: Uint8Array, bufferLength: number, fail: Fail): Header {
  const json = parseJsonObject(bytes, fail);
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(json)) {
    if (key === METADATA_KEY) metadata = parseMetadata(value, fail);
    else tensors.set(key, parseEntry(key, value, fail));
  }
  return { tensors: checkLayout(tensors, bufferLength, fail), metadata };
}

/**
 * An open safetensors file. Opening reads and validates only the header; each tensor is read on demand
 * with one positioned read of exactly its bytes.
 */
export class SafetensorsFile {
  readonly path: string;
  #fd: number | undefined;
  #bytesRead = 0;
  readonly #header: Header;
  readonly #dataStart: number;
  readonly #fail: Fail;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.#fd = fd;
    this.#fail = failFor("safetensors", path);
    const fileSize = fs.fstatSync(fd).size;
    if (fileSize < 8) this.#fail(`truncated: ${fileSize} bytes, fewer than the 8-byte header length`);
    const n = new DataView(this.#read(0, 8).buffer).getBigUint64(0, true);
    if (n > BigInt(fileSize - 8)) {
      this.#fail(`header length ${n} exceeds the ${fileSize - 8} bytes after the length field`);
    }
    if (n > MAX_HEADER_BYTES) this.#fail(`header length ${n} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
    const headerLength = Number(n);
    this.#dataStart = 8 + headerLength;
    this.#header = parseHeader(this.#read(8, headerLength), fileSize - this.#dataStart, this.#fail);
  }

  /** Opens `path` and validates its header; the tensors' bytes are not read. */
  static open(path: string): SafetensorsFile {
    const fd = openForRead("safetensors", path);
    try {
      return new SafetensorsFile(path, fd);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  #read(position: number, length: number): Uint8Array {
    if (this.#fd === undefined) this.#fail("file is closed");
    const bytes = readExactly(this.#fd, position, length, this.#fail);
    this.#bytesRead += length;
    return bytes;
  }

  /** Bytes read from the file so far, header included. */
  get bytesRead(): number {
    return this.#bytesRead;
  }

  /** The `__metadata__` string pairs ({} when absent). */
  get metadata(): Readonly<Record<string, string>> {
    return this.#header.metadata;
  }

  /** Tensor names in the order of their data in the file. */
  keys(): string[] {
    return [...this.#header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.#header.tensors.has(name);
  }

  /** dtype, shape and offsets of a tensor, from the header. */
  info(name: string): TensorInfo {
    const info = this.#header.tensors.get(name);
    if (info === undefined) {
      const names = this.keys();
      const shown = names
        .slice(0, 8)
        .map((k) => `'${k}'`)
        .join(", ");
      this.#fail(`no tensor '${name}' (the file holds ${names.length}: ${shown}${names.length > 8 ? ", ..." : ""})`);
    }
    return info;
  }

  /** dst.length bytes of a tensor's data from byte `start` of it, read into dst (a part of a large tensor). */
  readBytes(name: string, start: number, dst: Uint8Array): void {
    const [begin, end] = this.info(name).dataOffsets;
    if (!(Number.isSafeInteger(start) && start >= 0 && start + dst.length <= end - begin))
      this.#fail(`tensor '${name}': bytes [${start}, ${start + dst.length}) are outside its ${end - begin}`);
    if (this.#fd === undefined) this.#fail("file is closed");
    readExactly(this.#fd, this.#dataStart + begin + start, dst.length, this.#fail, dst);
    this.#bytesRead += dst.length;
  }

  /** A tensor's bytes in their stored dtype, read with one positioned read. */
  getRaw(name: string): RawTensor {
    const { dtype, shape, dataOffsets } = this.info(name);
    const [begin, end] = dataOffsets;
    return { dtype, shape, bytes: this.#read(this.#dataStart + begin, end - begin) };
  }

  /** A tensor as a moekit Tensor (see ReadOptions for the dtype); integers outside int32 range are an error. */
  get(name: string, options: ReadOptions = {}): Tensor {
    checkOptionKeys(options, READ_OPTIONS, "SafetensorsFile.get");
    const raw = this.getRaw(name);
    const fail: Fail = failFor("safetensors", this.path, `tensor '${name}' (${raw.dtype})`);
    if (options.dtype === "int8" || options.dtype === "uint8")
      return new Tensor(codesOf(raw.dtype, raw.bytes, options.dtype, fail), raw.shape, options.dtype);
    const decoded = decodeElements(raw.dtype, raw.bytes, fail);
    const dtype = options.dtype ?? decoded.dtype;
    return new Tensor(castDecoded(decoded, dtype, fail), raw.shape, dtype);
  }

  /** Closes the file; later reads are an error. Closing twice is harmless. */
  close(): void {
    if (this.#fd !== undefined) fs.closeSync(this.#fd);
    this.#fd = undefined;
  }
}

/** Reads every tensor of a safetensors file. */
export function loadSafetensors(path: string, options: ReadOptions = {}): Record<string, Tensor> {
  checkOptionKeys(options, READ_OPTIONS, "loadSafetensors");
  const file = SafetensorsFile.open(path);
  try {
    return Object.fromEntries(file.keys().map((name) => [name, file.get(name, options)]));
  } finally {
    file.close();
  }
}

interface PlannedTensor {
  name: string;
  tensor: Tensor;
  dtype: StorageDType;
  begin: number;
  end: number;
}

/** Throws for a reserved tensor name, a non-string metadata value, or a `dtypes` entry naming no tensor or no dtype. */
export function checkSaveOptions(tensors: Record<string, Tensor>, options: SaveOptions, fail: Fail): void {
  if (Object.hasOwn(tensors, METADATA_KEY)) fail(`'${METADATA_KEY}' is reserved and cannot name a tensor`);
  for (const [k, v] of Object.entries(options.metadata ?? {})) {
    if (typeof v !== "string") fail(`metadata value of '${k}' is ${JSON.stringify(v)}, not a string`);
  }
  for (const [name, dtype] of Object.entries(options.dtypes ?? {})) {
    if (!Object.hasOwn(tensors, name)) fail(`dtypes names '${name}', which is not among the tensors`);
    if (!isStorageDType(dtype)) fail(`dtypes gives tensor '${name}' the unknown dtype ${JSON.stringify(dtype)}`);
  }
}

/** Storage dtype of each tensor: the requested one, else the one that holds it exactly. */
export function storageDTypeOf(name: string, t: Tensor, options: SaveOptions): StorageDType {
  return options.dtypes?.[name] ?? defaultStorage(t.dtype);
}

function planTensors(tensors: Record<string, Tensor>, options: SaveOptions): PlannedTensor[] {
  let offset = 0;
  return Object.keys(tensors)
    .sort()
    .map((name) => {
      const tensor = tensors[name]!;
      const dtype = storageDTypeOf(name, tensor, options);
      const begin = offset;
      offset += tensor.size * storageWidth(dtype);
      return { name, tensor, dtype, begin, end: offset };
    });
}

/** Length prefix + JSON header, padded with spaces so that the data buffer starts 8-byte aligned. */
function encodeHeader(planned: PlannedTensor[], metadata: Record<string, string> | undefined): Uint8Array {
  const fields: string[] = [];
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    fields.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  }
  for (const { name, tensor, dtype, begin, end } of planned) {
    const entry = { dtype, shape: tensor.shape, data_offsets: [begin, end] };
    fields.push(`${JSON.stringify(name)}:${JSON.stringify(entry)}`);
  }
  const json = new TextEncoder().encode(`{${fields.join(",")}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/**
 * Writes `tensors` to a safetensors file, data in sorted-name order. Reading it back gives bit-identical
 * tensors when each keeps its natural storage dtype; int8 and uint8 tensors (I8 / U8) come back as int32 unless
 * read with `{ dtype: "int8" }` / `{ dtype: "uint8" }`. Values that do not fit a requested integer dtype,
 * or floats requested as integers, are an error; nothing is left at `path` then. An existing `path` is
 * replaced only with `overwrite`.
 */
export function saveSafetensors(path: string, tensors: Record<string, Tensor>, options: SaveOptions = {}): void {
  checkOptionKeys(options, SAVE_OPTIONS, "saveSafetensors");
  const fail = failFor("safetensors", path);
  checkSaveOptions(tensors, options, fail);
  const planned = planTensors(tensors, options);
  function* chunks(): Generator<Uint8Array> {
    yield encodeHeader(planned, options.metadata);
    for (const { name, tensor, dtype } of planned) {
      yield encodeElements(tensor, dtype, failFor("safetensors", path, `tensor '${name}'`));
    }
  }
  writeAtomically(path, chunks(), fail, options);
}
