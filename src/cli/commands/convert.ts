import { MoeError } from "../../core/errors.js";
import {
  HF_FAMILIES,
  MODULE_KINDS,
  isHfFamily,
  openMoeLayer,
  writeHfMoeLayer,
  writeMaxTextMoeLayer,
  type CheckpointFormat,
  type MoeModuleKind,
} from "../../checkpoint/index.js";
import { readKeysFile } from "../config-file.js";
import { checkOutput, dataFiles } from "../outputs.js";
import { applyMaxMemory, LAYER_WRITE_OPTIONS, optionalIntFlag, parseCommandArgs } from "../flags.js";

const HELP = `Usage: moekit convert --from hf|maxtext --to hf|maxtext IN OUT [options]

Converts one MoE layer between a Hugging Face checkpoint (directory with config.json and safetensors,
sharded or not) and the MaxText layout (safetensors named like decoder/layers_3/MoeBlock_0/wi_0, with the
MaxText keys in its metadata). Only the layer's tensors are read. Values are moved, never recomputed:
HF -> MaxText -> HF gives back the same bytes.

Options:
  --layer N            decoder layer to convert (HF default: the first MoE layer; MaxText: the stored one)
  --family NAME        Hugging Face family to write when the layer was not read from HF
                       (${HF_FAMILIES.join(", ")})
  --config FILE        MaxText keys (JSON or YAML) for a MaxText file without moekit metadata
  --module KIND        ${MODULE_KINDS.join(" | ")} (MaxText file without metadata)
  --max-shard-bytes N  write shards of at most N data bytes plus an index json (a tensor larger than N
                       gets a shard of its own: tensors are not split)
  --max-memory BYTES   refuse a layer estimated above BYTES in memory (default: 75% of free memory)
  --force              replace an existing OUT (a file, or a folder holding only a checkpoint)
  --quiet              no progress messages on stderr`;

function format(v: string | undefined, flag: string): CheckpointFormat {
  if (v !== "hf" && v !== "maxtext") throw new MoeError(`${flag} must be hf or maxtext, got ${JSON.stringify(v)} (see --help)`);
  return v;
}

/** `moekit convert`: returns the exit code. */
export async function convertCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args: argv,
    allowPositionals: true,
    options: {
      from: { type: "string" },
      to: { type: "string" },
      family: { type: "string" },
      config: { type: "string" },
      module: { type: "string" },
      "max-shard-bytes": { type: "string" },
      ...LAYER_WRITE_OPTIONS,
    },
  });
  if (values.help === true) {
    console.log(HELP);
    return 0;
  }
  const from = format(values.from, "--from");
  const to = format(values.to, "--to");
  if (positionals.length !== 2) throw new MoeError(`expects IN and OUT, got ${positionals.length} paths (see --help)`);
  const [input, output] = positionals as [string, string];
  const overwrite = values.force === true;
  checkOutput(
    { flag: "OUT", path: output },
    [
      { flag: "IN", path: input },
      { flag: "--config", path: values.config },
    ],
    overwrite,
  );
  applyMaxMemory(values["max-memory"]);
  const layer = optionalIntFlag(values.layer, "--layer", 0);
  const maxShardBytes = optionalIntFlag(values["max-shard-bytes"], "--max-shard-bytes", 1);
  const family = values.family;
  if (family !== undefined && !isHfFamily(family)) throw new MoeError(`--family ${family} is not one of ${HF_FAMILIES.join(", ")}`);
  const module = values.module as MoeModuleKind | undefined;
  if (module !== undefined && !MODULE_KINDS.includes(module))
    throw new MoeError(`--module ${module} is not one of ${MODULE_KINDS.join(", ")}`);
  const onProgress = values.quiet === true ? undefined : (m: string): void => console.error(`[moekit] ${m}`);
  const keys = values.config === undefined ? undefined : readKeysFile(values.config);
  const l = openMoeLayer(input, layer, { format: from, keys, module, onProgress, family: from === "hf" ? family : undefined });
  let files: string[];
  let count: number;
  if (to === "hf") {
    const r = writeHfMoeLayer(l, output, { family, maxShardBytes, onProgress, overwrite });
    files = r.files;
    count = r.tensorNames.length;
  } else {
    const r = writeMaxTextMoeLayer(l, output, { maxShardBytes, onProgress, overwrite });
    files = r.files;
    count = r.tensorNames.length;
  }
  for (const c of l.caveats) onProgress?.(`note: ${c}`);
  if (to === "hf" && l.config.loadBalanceLossWeight !== 0)
    onProgress?.(
      `note: load_balance_loss_weight=${l.config.loadBalanceLossWeight} (a training setting, not the layer's output) is not in config.json: pass --set load_balance_loss_weight=${l.config.loadBalanceLossWeight} where you read it back`,
    );
  console.log(
    `converted layer ${l.layer} (${l.hf?.family ?? l.config.decoderBlock}, ${l.module}) from ${from} to ${to}: ${count} tensors in ${dataFiles(files)} under ${output}`,
  );
  return 0;
}
