// Checkpoint folders are written whole: into a temporary folder beside the destination, then renamed into place.
import fs from "node:fs";
import path from "node:path";
import type { Tensor } from "../core/tensor.js";
import { saveSafetensors, type StorageDType } from "../io/index.js";
import { writeFolderAtomically } from "../io/atomic-write.js";
import { checkShardBytes, writeShards } from "../io/sharded.js";
import { CheckpointLayoutError } from "./layer.js";

/**
 * Makes the checkpoint folder `dir` (its parent folders too), after checking `maxShardBytes` where given: `fill`
 * writes into a temporary folder and returns the names of what it wrote; the result is their paths under `dir`. An
 * existing non-empty `dir` is replaced only with `overwrite`, and only when it holds checkpoint files alone.
 */
export function writeCheckpointFolder(
  dir: string,
  opts: { overwrite?: boolean; maxShardBytes?: number | undefined },
  fill: (tmpDir: string) => string[],
): string[] {
  const fail = (problem: string): never => {
    throw new CheckpointLayoutError(dir, problem);
  };
  if (opts.maxShardBytes !== undefined) checkShardBytes(opts.maxShardBytes, fail);
  fs.mkdirSync(path.dirname(path.resolve(dir)), { recursive: true });
  return writeFolderAtomically(dir, fill, fail, opts).map((name) => path.join(dir, name));
}

/** Writes `tensors` into `dir` as model.safetensors, or as shards plus their index (listed first) with `maxShardBytes`. */
export function writeTensorFiles(
  dir: string,
  tensors: Record<string, Tensor>,
  opts: { maxShardBytes: number | undefined; dtypes: Record<string, StorageDType>; metadata: Record<string, string> },
): string[] {
  const { maxShardBytes, dtypes, metadata } = opts;
  if (maxShardBytes !== undefined) {
    const r = writeShards(dir, tensors, { maxShardBytes, dtypes, metadata });
    return [r.index, ...r.shards];
  }
  saveSafetensors(path.join(dir, "model.safetensors"), tensors, { dtypes, metadata });
  return ["model.safetensors"];
}
