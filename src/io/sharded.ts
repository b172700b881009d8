// Sharded safetensors checkpoints: shard files plus a `<prefix>.safetensors.index.json` of the form
// {"metadata": {...}, "weight_map": {tensorName: shardFileName}}, as written by Hugging Face libraries.
import fs from "node:fs";
import path from "node:path";
import type { Tensor } from "../core/tensor.js";
import { checkOptionKeys } from "../core/suggest.js";
import { storageWidth, type Fail } from "./codec.js";
import { writeAtomically, writeFolderAtomically } from "./atomic-write.js";
import { CheckpointError, MAX_JSON_DEPTH, checkJsonDepth, failFor, isObject, readRegularFile, systemMessage } from "./files.js";
import { backsCheckpointFile, realPathOf } from "./paths.js";
import {
  SAVE_OPTIONS,
  SafetensorsFile,
  checkSaveOptions,
  saveSafetensors,
  storageDTypeOf,
  type RawTensor,
  type ReadOptions,
  type SaveOptions,
  type TensorInfo,
} from "./safetensors.js";

const INDEX_SUFFIX = ".safetensors.index.json";
const DEFAULT_INDEX = `model${INDEX_SUFFIX}`;

interface Layout {
  /** Tensor name -> absolute shard path. */
  weightMap: Map<string, string>;
  metadata: Record<string, unknown>;
  /** Shards already opened while finding the layout. */
  opened: SafetensorsFile[];
}

/** Fails if `file` (a symlink, say) resolves to a place outside the checkpoint folder `dir`. */
function checkRealPathInside(dir: string, file: string, fail: Fail): void {
  const real = realPathOf(file);
  if (!backsCheckpointFile(real, realPathOf(dir))) {
    fail(`shard '${path.relative(dir, file)}' resolves to ${real}, which lies outside the checkpoint directory`);
  }
}

function resolveShard(dir: string, shard: string, fail: Fail): string {
  const resolved = path.resolve(dir, shard);
  if (path.isAbsolute(shard) || path.relative(dir, resolved).split(path.sep)[0] === "..") {
    fail(`weight_map names shard '${shard}', which lies outside the checkpoint directory`);
  }
  return resolved;
}

/** Largest index file read (real ones are a few hundred KiB). */
const MAX_INDEX_BYTES = 64 << 20;

function parseIndexJson(indexPath: string, fail: Fail): Record<string, unknown> {
  const text = new TextDecoder().decode(readRegularFile(indexPath, fail, MAX_INDEX_BYTES));
  checkJsonDepth(text, fail, MAX_JSON_DEPTH);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(`index is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(json)) fail("index is not a JSON object");
  return json;
}

function readIndex(indexPath: string): Layout {
  const fail: Fail = failFor("safetensors", indexPath);
  const { weight_map: entries, metadata = {} } = parseIndexJson(indexPath, fail);
  if (!isObject(entries)) fail(`weight_map is ${JSON.stringify(entries)}, not an object of shard file names`);
  if (!isObject(metadata)) fail(`metadata is ${JSON.stringify(metadata)}, not an object`);
  const dir = path.dirname(indexPath);
  const weightMap = new Map<string, string>();
  for (const [name, shard] of Object.entries(entries)) {
    if (typeof shard !== "string") fail(`weight_map entry '${name}' is ${JSON.stringify(shard)}, not a file name`);
    weightMap.set(name, resolveShard(dir, shard, fail));
  }
  for (const shard of new Set(weightMap.values())) {
    if (!fs.existsSync(shard)) fail(`weight_map names shard '${path.relative(dir, shard)}', which does not exist`);
    checkRealPathInside(dir, shard, fail);
  }
  return { weightMap, metadata, opened: [] };
}

/** Opens every file's header to learn which tensors it holds; a name in two files is an error. */
function readFiles(source: string, files: string[]): Layout {
  const weightMap = new Map<string, string>();
  const opened: SafetensorsFile[] = [];
  try {
    for (const file of files) {
      const shard = SafetensorsFile.open(file);
      opened.push(shard);
      for (const name of shard.keys()) {
        const other = weightMap.get(name);
        if (other !== undefined) {
          throw new CheckpointError("safetensors", source, `tensor '${name}' is in both ${other} and ${file}`);
        }
        weightMap.set(name, file);
      }
    }
  } catch (e) {
    for (const f of opened) f.close();
    throw e;
  }
  const metadata = opened.length === 1 ? { ...opened[0]!.metadata } : {};
  return { weightMap, metadata, opened };
}

function readDirectory(dir: string): Layout {
  const fail: Fail = failFor("safetensors", dir);
  const entries = fs.readdirSync(dir).sort();
  const indexes = entries.includes(DEFAULT_INDEX) ? [DEFAULT_INDEX] : entries.filter((e) => e.endsWith(INDEX_SUFFIX));
  if (indexes.length > 1) fail(`several index files (${indexes.join(", ")}); open one of them`);
  if (indexes.length === 1) return readIndex(path.join(dir, indexes[0]!));
  const files = entries.filter((e) => e.endsWith(".safetensors"));
  if (files.length === 0) fail(`no ${DEFAULT_INDEX} and no .safetensors files`);
  for (const f of files) checkRealPathInside(dir, path.join(dir, f), fail);
  return readFiles(
    dir,
    files.map((f) => path.join(dir, f)),
  );
}

function readLayout(location: string): Layout {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(location);
  } catch (e) {
    throw new CheckpointError("safetensors", location, `cannot open (${systemMessage(e)})`, { cause: e });
  }
  if (stat.isDirectory()) return readDirectory(location);
  if (location.endsWith(".json")) return readIndex(location);
  return readFiles(location, [location]);
}

/**
 * A checkpoint of one or more safetensors files. Tensors are read lazily: `get` opens only the shard
 * that holds the tensor (opened shards stay open until `close`).
 */
export class SafetensorsCheckpoint {
  /** The index's `metadata` object, or a single file's `__metadata__` ({} for several files without index). */
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly #source: string;
  readonly #weightMap: Map<string, string>;
  readonly #shards = new Map<string, SafetensorsFile>();

  private constructor(source: string, layout: Layout) {
    this.#source = source;
    this.#weightMap = layout.weightMap;
    this.metadata = layout.metadata;
    for (const shard of layout.opened) this.#shards.set(shard.path, shard);
  }

  /**
   * Opens a checkpoint from a `*.safetensors.index.json` file, a single `.safetensors` file, or a
   * directory (its `model.safetensors.index.json`, its only index file, or else all its .safetensors files).
   */
  static open(location: string): SafetensorsCheckpoint {
    return new SafetensorsCheckpoint(location, readLayout(location));
  }

  /** Tensor names, sorted. */
  keys(): string[] {
    return [...this.#weightMap.keys()].sort();
  }

  has(name: string): boolean {
    return this.#weightMap.has(name);
  }

  /** Path of the shard file that holds `name`. */
  shardOf(name: string): string {
    const shard = this.#weightMap.get(name);
    if (shard === undefined) {
      throw new CheckpointError("safetensors", this.#source, `no tensor '${name}' in the checkpoint`);
    }
    return shard;
  }

  /** Paths of the shards opened so far. */
  get openShards(): string[] {
    return [...this.#shards.keys()];
  }

  #fileOf(name: string): SafetensorsFile {
    const shardPath = this.shardOf(name);
    let shard = this.#shards.get(shardPath);
    if (shard === undefined) {
      shard = SafetensorsFile.open(shardPath);
      this.#shards.set(shardPath, shard);
    }
    if (!shard.has(name)) {
      const problem = `the index maps tensor '${name}' here but the file has no such tensor`;
      throw new CheckpointError("safetensors", shardPath, problem);
    }
    return shard;
  }

  info(name: string): TensorInfo {
    return this.#fileOf(name).info(name);
  }

  getRaw(name: string): RawTensor {
    return this.#fileOf(name).getRaw(name);
  }

  /** Part of a tensor's bytes (see SafetensorsFile.readBytes). */
  readBytes(name: string, start: number, dst: Uint8Array): void {
    this.#fileOf(name).readBytes(name, start, dst);
  }

  /** Reads one tensor from its shard (see SafetensorsFile.get). */
  get(name: string, options: ReadOptions = {}): Tensor {
    return this.#fileOf(name).get(name, options);
  }

  /** Closes every opened shard. */
  close(): void {
    for (const shard of this.#shards.values()) shard.close();
    this.#shards.clear();
  }
}

export interface ShardedSaveOptions extends SaveOptions {
  /** Most data bytes per shard; a tensor larger than this gets a shard of its own. */
  maxShardBytes: number;
  /** Files are `<prefix>-00001-of-0000N.safetensors` and `<prefix>.safetensors.index.json`; default "model". */
  prefix?: string;
}

export interface ShardedSaveResult {
  indexPath: string;
  shards: string[];
  /** Data bytes over all shards (the index's metadata.total_size). */
  totalSize: number;
}

/** Tensor names grouped into shards in sorted order, each group's data at most `maxBytes` when possible. */
function groupIntoShards(sizes: Map<string, number>, maxBytes: number): string[][] {
  const groups: string[][] = [[]];
  let used = 0;
  for (const [name, bytes] of sizes) {
    let group = groups[groups.length - 1]!;
    if (group.length > 0 && used + bytes > maxBytes) {
      group = [];
      groups.push(group);
      used = 0;
    }
    group.push(name);
    used += bytes;
  }
  return groups;
}

function pick<T>(record: Record<string, T>, names: string[]): Record<string, T> {
  return Object.fromEntries(names.filter((n) => Object.hasOwn(record, n)).map((n) => [n, record[n]!]));
}

const pad5 = (i: number): string => String(i).padStart(5, "0");

/** Refuses (through `fail`, named with the folder the user gave) a shard size that is not a positive number. */
export function checkShardBytes(maxShardBytes: number, fail: Fail): void {
  if (!(maxShardBytes > 0)) fail(`maxShardBytes ${maxShardBytes} is not a positive number`);
}

/**
 * Writes `tensors` as shards into the existing folder `dir`, the index json last (`maxShardBytes` checked by the
 * caller, before the folder being made exists: checkShardBytes). Returns the file names.
 * For a folder that is being made (see writeFolderAtomically); saveShardedSafetensors is the public form.
 */
export function writeShards(
  dir: string,
  tensors: Record<string, Tensor>,
  options: ShardedSaveOptions,
): { index: string; shards: string[]; totalSize: number } {
  const prefix = options.prefix ?? "model";
  const index = `${prefix}${INDEX_SUFFIX}`;
  const fail: Fail = failFor("safetensors", path.join(dir, index));
  checkSaveOptions(tensors, options, fail);
  const sizes = new Map(
    Object.keys(tensors)
      .sort()
      .map((n) => [n, tensors[n]!.size * storageWidth(storageDTypeOf(n, tensors[n]!, options))]),
  );
  const groups = groupIntoShards(sizes, options.maxShardBytes);
  const shards = groups.map((_, i) => `${prefix}-${pad5(i + 1)}-of-${pad5(groups.length)}.safetensors`);
  groups.forEach((group, i) => {
    const shardOptions = { metadata: options.metadata, dtypes: pick(options.dtypes ?? {}, group) };
    saveSafetensors(path.join(dir, shards[i]!), pick(tensors, group), shardOptions);
  });
  const totalSize = [...sizes.values()].reduce((a, b) => a + b, 0);
  const weightMap = Object.fromEntries(groups.flatMap((group, i) => group.map((n) => [n, shards[i]!])));
  const json = { metadata: { ...options.metadata, total_size: totalSize }, weight_map: weightMap };
  writeAtomically(path.join(dir, index), [new TextEncoder().encode(`${JSON.stringify(json, null, 2)}\n`)], fail);
  return { index, shards, totalSize };
}

/**
 * Writes `tensors` as the folder `dir`: shards of at most `maxShardBytes` data each, plus an index json mapping
 * every tensor to its shard. `metadata` goes into every shard and, with `total_size`, into the index. The folder
 * is made whole in a temporary folder and renamed into place; an existing non-empty `dir` is replaced only with
 * `overwrite`, and only when it holds nothing but checkpoint files.
 */
export function saveShardedSafetensors(dir: string, tensors: Record<string, Tensor>, options: ShardedSaveOptions): ShardedSaveResult {
  checkOptionKeys(options, [...SAVE_OPTIONS, "maxShardBytes", "prefix"], "saveShardedSafetensors");
  const fail = failFor("safetensors", dir);
  checkShardBytes(options.maxShardBytes, fail);
  const written = writeFolderAtomically(dir, (tmp) => writeShards(tmp, tensors, options), fail, options);
  return { indexPath: path.join(dir, written.index), shards: written.shards.map((n) => path.join(dir, n)), totalSize: written.totalSize };
}
