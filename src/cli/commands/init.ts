import { MoeError } from "../../core/errors.js";
import type { Tensor } from "../../core/tensor.js";
import { isHfFamily, makeLayer, writeHfMoeLayer, writeMaxTextMoeLayer, type HfFamily, type MoeLayer } from "../../checkpoint/index.js";
import { moeConfig } from "../../moe/config.js";
import { getPreset } from "../../moe/presets.js";
import { RoutedMoE } from "../../moe/routed-moe.js";
import { layerParamShapes, RoutedAndSharedMoE, sharedExpertDim } from "../../moe/routed-and-shared-moe.js";
import { prngKey } from "../../nn/random.js";
import { checkOutput } from "../outputs.js";
import { applyMaxMemory, intFlag, parseCommandArgs } from "../flags.js";
import { checkMemory } from "../../core/memory.js";
import { weightEstimate } from "../../moe/memory-estimate.js";
import { parseSets, withOverrides } from "../sets.js";

const HELP = `Usage: moekit init --preset NAME [--format maxtext|hf] [--family F] [--seed N] [--set KEY=VALUE] [--max-memory BYTES] [--force] OUT

Writes one MoE layer with MaxText's initialisers (seeded) as a checkpoint: the MaxText layout
(OUT ending in .safetensors, or a directory), or a Hugging Face directory (config.json + safetensors)
of family F (mixtral, qwen3_moe, deepseek_v3, gpt_oss, llama4, ...). Read it back with
\`moekit run --checkpoint OUT\`. An existing OUT is replaced only with --force. A layer whose weights are
estimated above --max-memory BYTES (default: 75% of free memory) is refused before anything is allocated.`;

export function initCommand(argv: string[]): number {
  const { values, positionals } = parseCommandArgs({
    args: argv,
    allowPositionals: true,
    options: {
      preset: { type: "string" },
      format: { type: "string", default: "maxtext" },
      family: { type: "string" },
      seed: { type: "string", default: "0" },
      "max-memory": { type: "string" },
      set: { type: "string", multiple: true },
      force: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help === true) {
    console.log(HELP);
    return 0;
  }
  const out = positionals[0];
  if (values.preset === undefined || out === undefined) throw new MoeError("give --preset NAME and an output path (see --help)");
  if (positionals.length > 1) throw new MoeError(`init writes one OUT, got ${positionals.length} paths: ${positionals.join(" ")}`);
  // what the write will refuse, refused before the layer is made
  const family = values.family;
  if (values.format === "hf") {
    if (family === undefined || !isHfFamily(family))
      throw new MoeError(`--format hf needs --family (e.g. mixtral, qwen3_moe, deepseek_v3), got ${String(family)}`);
    if (out.endsWith(".safetensors"))
      throw new MoeError(`--format hf writes a folder (config.json and safetensors), not the file ${out}: give a folder name`);
  } else if (values.format !== "maxtext") throw new MoeError(`--format must be maxtext or hf, got ${values.format}`);
  else if (family !== undefined) throw new MoeError(`--family ${family} goes with --format hf (the MaxText layout has no family)`);
  applyMaxMemory(values["max-memory"]);
  const overwrite = values.force === true;
  checkOutput({ flag: "OUT", path: out }, [], overwrite);
  const p = getPreset(values.preset);
  const keys = withOverrides(p.keys, parseSets(values.set));
  const cfg = moeConfig(keys);
  const key = prngKey(intFlag(values.seed, "--seed", 0));
  const estimate = weightEstimate(layerParamShapes(cfg, p.layer === "routed_and_shared"), cfg.weightDtype);
  checkMemory("init", estimate);
  const log = (m: string): void => console.error(`[moekit] ${m}`);
  log(
    `initialising ${values.preset} (${cfg.weightDtype} weights, about ${(Object.values(estimate).reduce((a, b) => a + b, 0) / 1e6).toFixed(0)} MB)`,
  );
  let params: Record<string, Tensor>;
  let sharedDim = 0;
  if (p.layer === "routed_and_shared") {
    params = new RoutedAndSharedMoE(cfg, { key }).paramRecord();
    sharedDim = sharedExpertDim(cfg);
  } else params = new RoutedMoE(cfg, { key }).paramRecord();
  const layer: MoeLayer = makeLayer({
    module: p.layer,
    keys,
    layer: 0,
    sharedDim,
    firstDenseLayers: 0,
    params,
    storage: {},
    caveats: [],
    guards: [],
  });
  if (values.format === "hf") {
    const r = writeHfMoeLayer(layer, out, {
      family: family as HfFamily,
      onProgress: log,
      overwrite,
    });
    console.log(`wrote ${r.tensorNames.length} tensors (${family}) to ${r.dir}`);
  } else {
    const r = writeMaxTextMoeLayer(layer, out, { onProgress: log, overwrite });
    console.log(`wrote ${r.tensorNames.length} tensors under ${r.prefix}/ to ${r.files.join(", ")}`);
  }
  return 0;
}
