// Open a MoE layer from either layout, detecting which one a path holds.
import fs from "node:fs";
import path from "node:path";
import { checkOptionKeys } from "../core/suggest.js";
import { removeStaleTemporaries } from "../io/temporaries.js";
import { CheckpointLayoutError, type LayerReadOptions, type MoeLayer } from "./layer.js";
import { readHfMoeLayer } from "./hf-layout.js";
import { MAXTEXT_READ_OPTIONS, readMaxTextMoeLayer, type MaxTextReadOptions } from "./maxtext-layout.js";
import type { HfFamily } from "./hf-config.js";

export type CheckpointFormat = "hf" | "maxtext";

/** "hf" for a directory with config.json, else "maxtext" (a moekit MaxText-layout file or directory). */
export function detectCheckpointFormat(location: string): CheckpointFormat {
  if (!fs.existsSync(location)) throw new CheckpointLayoutError(location, "does not exist");
  if (fs.statSync(location).isDirectory() && fs.existsSync(path.join(location, "config.json"))) return "hf";
  return "maxtext";
}

export interface OpenLayerOptions extends LayerReadOptions, Omit<MaxTextReadOptions, keyof LayerReadOptions | "layer"> {
  /** which layout to read (default: detected) */
  format?: CheckpointFormat;
  /** HF: read as this family */
  family?: HfFamily;
}

/** Reads MoE layer `layer` (HF default: the first MoE layer; MaxText default: the stored one). */
export function openMoeLayer(location: string, layer: number | undefined, opts: OpenLayerOptions = {}): MoeLayer {
  // a replace of this folder killed between its two renames left the old checkpoint under a temporary name
  if (!fs.existsSync(location)) removeStaleTemporaries(location);
  checkOptionKeys(opts, [...MAXTEXT_READ_OPTIONS.filter((k) => k !== "layer"), "format", "family"], "openMoeLayer");
  const { format: given, family, keys, module, sharedDim, firstDenseLayers, prefix, ...common } = opts;
  const format = given ?? detectCheckpointFormat(location);
  if (format === "hf") return readHfMoeLayer(location, layer, { ...common, family });
  if (family !== undefined)
    throw new CheckpointLayoutError(location, `family ${family} is for Hugging Face checkpoints; this is the MaxText layout`);
  return readMaxTextMoeLayer(location, { ...common, keys, module, sharedDim, firstDenseLayers, prefix, layer });
}
