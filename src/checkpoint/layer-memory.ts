// What reading one layer of a checkpoint holds in memory, checked from the headers before any tensor is read.
import { checkMemory } from "../core/memory.js";

/** Refuses a layer whose `bytes` of stored tensors, with their copies, are over the memory budget. */
export function checkLayerMemory(location: string, bytes: number): void {
  // transposes and stacks copy each tensor once; bf16 widened to float32 takes twice its stored bytes
  checkMemory(`checkpoint ${location}`, { "layer tensors": bytes, "copies (transposes, float32 widening)": 2 * bytes });
}
