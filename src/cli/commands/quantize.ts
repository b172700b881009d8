import { MoeError } from "../../core/errors.js";
import { openMoeLayer, quantizeMoeLayer, writeMaxTextMoeLayer } from "../../checkpoint/index.js";
import { QUANTIZE_MODES, quantizedStorage, type QuantizeMode } from "../../ops/quantized-weight.js";
import { checkOutput, dataFiles } from "../outputs.js";
import { size } from "../../core/shape.js";
import { weightLayout } from "../../prims/quantized-gmm.js";
import { applyMaxMemory, LAYER_WRITE_OPTIONS, optionalIntFlag, parseCommandArgs } from "../flags.js";

const HELP = `Usage: moekit quantize --mode int8|int4 IN OUT [options]

Quantizes one MoE layer for serving: the routed experts' wi_0, wi_1 and wo become int8 codes (int4: two codes
per byte) with one float32 scale per (expert, column) (AQT's symmetric weight-only rule); the gate, biases and
shared MLP stay as stored. IN is a Hugging Face or MaxText checkpoint; OUT is written in the MaxText layout
(<weight>/qvalue and <weight>/scale tensors, moekit.quantization metadata). A float layer is saved as
quantization=intmp with w_bits 8 or 4 (activations stay float); an int8 layer keeps int8 (activations are
quantized per token at run time). Run it with \`moekit run --checkpoint OUT\`.

Options:
  --mode int8|int4     storage of the expert weights (required)
  --layer N            decoder layer (HF default: the first MoE layer; MaxText: the stored one)
  --max-memory BYTES   refuse a layer estimated above BYTES in memory (default: 75% of free memory)
  --force              replace an existing OUT (a file, or a folder holding only a checkpoint)
  --quiet              no progress messages on stderr`;

/** `moekit quantize`: returns the exit code. */
export function quantizeCommand(argv: string[]): number {
  const { values, positionals } = parseCommandArgs({
    args: argv,
    allowPositionals: true,
    options: { mode: { type: "string" }, ...LAYER_WRITE_OPTIONS },
  });
  if (values.help === true) {
    console.log(HELP);
    return 0;
  }
  const mode = values.mode as QuantizeMode | undefined;
  if (mode === undefined || !QUANTIZE_MODES.includes(mode))
    throw new MoeError(`--mode must be ${QUANTIZE_MODES.join(" or ")}, got ${JSON.stringify(values.mode)} (see --help)`);
  if (positionals.length !== 2) throw new MoeError(`expects IN and OUT, got ${positionals.length} paths (see --help)`);
  const [input, output] = positionals as [string, string];
  const overwrite = values.force === true;
  checkOutput({ flag: "OUT", path: output }, [{ flag: "IN", path: input }], overwrite);
  applyMaxMemory(values["max-memory"]);
  const layerArg = optionalIntFlag(values.layer, "--layer", 0);
  const onProgress = values.quiet === true ? undefined : (m: string): void => console.error(`[moekit] ${m}`);
  const layer = quantizeMoeLayer(openMoeLayer(input, layerArg, { onProgress }), mode);
  const r = writeMaxTextMoeLayer(layer, output, { onProgress, overwrite });
  const ws = Object.values(layer.quantized!);
  const { bytes, weights } = quantizedStorage(ws);
  // the file holds the codes in rows; memory may hold them in tiles, padded (run --checkpoint reports that)
  const stored = ws.reduce((a, w) => a + size(weightLayout(w.format, ...w.shape).codes.shape) + w.scales.data.byteLength, 0);
  const held = bytes === stored ? "" : `; held in memory in ${bytes} bytes, ${(bytes / weights).toFixed(3)} per weight, codes in tiles`;
  console.log(
    `quantized layer ${layer.layer} (${layer.config.decoderBlock}, ${layer.module}) to ${mode}: ${weights} expert weights in ${stored} bytes (${(stored / weights).toFixed(3)} per weight${held}), ${r.tensorNames.length} tensors in ${dataFiles(r.files)} under ${output}`,
  );
  return 0;
}
