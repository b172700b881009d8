export { CheckpointError, type FileFormat } from "./files.js";
export type { OverwriteOption } from "./atomic-write.js";
export { STORAGE_DTYPES, type StorageDType } from "./codec.js";
export {
  SafetensorsFile,
  loadSafetensors,
  saveSafetensors,
  type RawTensor,
  type ReadOptions,
  type SaveOptions,
  type TensorInfo,
} from "./safetensors.js";
export { SafetensorsCheckpoint, saveShardedSafetensors, type ShardedSaveOptions, type ShardedSaveResult } from "./sharded.js";
export { readNpy, writeNpy, type NpyWriteOptions } from "./npy.js";
