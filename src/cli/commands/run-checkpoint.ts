import path from "node:path";
import { stats } from "../summary.js";
import { parseSets } from "../sets.js";
import { MoeError } from "../../core/errors.js";
import { Tensor } from "../../core/tensor.js";
import { loadSafetensors, readNpy, saveSafetensors, writeNpy } from "../../io/index.js";
import { bincount } from "../../ops/indexing.js";
import { reshape } from "../../ops/movement.js";
import { foldIn, normal, prngKey } from "../../nn/random.js";
import {
  HF_FAMILIES,
  isHfFamily,
  layerParameterCount,
  moeLayerForward,
  openMoeLayer,
  type CheckpointFormat,
  type MoeLayer,
} from "../../checkpoint/index.js";
import { quantizedStorage } from "../../ops/quantized-weight.js";
import { readKeysFile } from "../config-file.js";
import { checkOutput } from "../outputs.js";
import { applyMaxMemory, intFlag, optionalIntFlag, parseCommandArgs } from "../flags.js";
import { checkMemory } from "../../core/memory.js";
import { forwardEstimate } from "../../moe/memory-estimate.js";
import { checkFinite } from "../../moe/finite.js";
import { unreadKeys } from "../../moe/config.js";
import { runtimeInfo } from "../../backends/select.js";

const HELP = `Usage: moekit run --checkpoint PATH [options]

Loads one MoE layer of a checkpoint (Hugging Face directory with config.json, or a MaxText-layout
safetensors file/directory written by \`moekit convert\`), runs it on an input and prints the output
summary and routing statistics. Only the layer's tensors are read.

Options:
  --checkpoint PATH  the checkpoint
  --layer N          decoder layer (HF default: the first MoE layer; MaxText: the stored one)
  --input FILE       input activations, .npy or .safetensors (tensor "input" or the only tensor),
                     [B,S,D] or [T,D]; default: a seeded normal input of --batch x --seq
  --output FILE      write the output: .npy (output only) or .safetensors (output, topk_indices,
                     topk_weights, gate_logits)
  --force            replace an existing --output file
  --set KEY=VALUE    override a MaxText key (repeatable), e.g. --set dtype=float64 (default dtype float32)
  --format hf|maxtext  checkpoint layout (default: detected)
  --family NAME      read a HF checkpoint as this family (${HF_FAMILIES.join(", ")})
  --config FILE      MaxText keys for a MaxText file without moekit metadata
  --batch B, --seq S, --seed N   random input when no --input (default 1, 8, 0)
  --max-memory BYTES refuse a forward estimated above BYTES (default: 75% of free memory)
  --json             machine-readable output`;

/** True when `moekit run` was given --checkpoint (the lead's run.ts hands such calls to runCheckpointCommand). */
export function wantsCheckpoint(argv: readonly string[]): boolean {
  return argv.some((a) => a === "--checkpoint" || a.startsWith("--checkpoint="));
}

/** Reads an input tensor [B,S,D] (or [T,D] -> [1,T,D]) from .npy or .safetensors. */
export function readInput(file: string, D: number): Tensor {
  let t: Tensor;
  if (file.endsWith(".npy")) {
    t = readNpy(file);
  } else if (file.endsWith(".safetensors")) {
    const all = loadSafetensors(file);
    const names = Object.keys(all);
    const pick = all.input ?? (names.length === 1 ? all[names[0]!] : undefined);
    if (pick === undefined)
      throw new MoeError(`${file}: expected a tensor named "input" or exactly one tensor, found ${names.join(", ") || "none"}`);
    t = pick;
  } else {
    throw new MoeError(`--input ${file}: expected a .npy or .safetensors file`);
  }
  if (t.dtype === "int32") throw new MoeError(`${file}: input must be floating point, got int32`);
  if (t.ndim === 2) t = reshape(t, [1, t.shape[0]!, t.shape[1]!]);
  if (t.ndim !== 3 || t.shape[2] !== D)
    throw new MoeError(`${file}: input has shape [${t.shape.join(",")}], expected [B,S,${D}] or [T,${D}]`);
  return t;
}

/**
 * `moekit run --checkpoint PATH [--layer N] [--input FILE] [--output FILE] ...`: loads one MoE layer of a
 * checkpoint, runs it and reports routing statistics. `argv` is everything after `run` (it must contain
 * --checkpoint). Returns the exit code.
 */
export async function runCheckpointCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs({
    args: argv,
    options: {
      checkpoint: { type: "string" },
      layer: { type: "string" },
      input: { type: "string" },
      output: { type: "string" },
      force: { type: "boolean" },
      set: { type: "string", multiple: true },
      format: { type: "string" },
      family: { type: "string" },
      config: { type: "string" },
      batch: { type: "string", default: "1" },
      seq: { type: "string", default: "8" },
      seed: { type: "string", default: "0" },
      "max-memory": { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help === true) {
    console.log(HELP);
    return 0;
  }
  if (values.checkpoint === undefined) throw new MoeError("give --checkpoint PATH (see --help)");
  const overrides: Record<string, unknown> = { dtype: "float32", ...parseSets(values.set) };
  const fmt = values.format;
  if (fmt !== undefined && fmt !== "hf" && fmt !== "maxtext") throw new MoeError(`--format must be hf or maxtext, got ${fmt}`);
  if (values.family !== undefined && !isHfFamily(values.family))
    throw new MoeError(`--family ${values.family} is not one of ${HF_FAMILIES.join(", ")}`);
  const out = values.output;
  if (out !== undefined) {
    if (!out.endsWith(".npy") && !out.endsWith(".safetensors")) throw new MoeError(`--output ${out}: expected a .npy or .safetensors file`);
    const inputs = [
      { flag: "--checkpoint", path: values.checkpoint },
      { flag: "--input", path: values.input },
      { flag: "--config", path: values.config },
    ];
    checkOutput({ flag: "--output", path: out }, inputs, values.force === true);
  }
  applyMaxMemory(values["max-memory"]);
  const layerArg = optionalIntFlag(values.layer, "--layer", 0);
  const batch = intFlag(values.batch, "--batch", 1);
  const seq = intFlag(values.seq, "--seq", 1);
  const seed = intFlag(values.seed, "--seed", 0);
  const log = (m: string): void => {
    if (values.json !== true) console.error(`[moekit] ${m}`);
  };
  const t0 = performance.now();
  const layer: MoeLayer = openMoeLayer(values.checkpoint, layerArg, {
    format: fmt as CheckpointFormat | undefined,
    family: values.family !== undefined && isHfFamily(values.family) ? values.family : undefined,
    keys: values.config === undefined ? undefined : readKeysFile(values.config),
    overrides,
    onProgress: log,
  });
  const loadMs = performance.now() - t0;
  const cfg = layer.config;
  const D = cfg.expertInputDim;
  for (const c of [...layer.caveats, ...unreadKeys(cfg)]) log(`note: ${c}`);
  let x: Tensor;
  if (values.input === undefined) checkMemory("run", forwardEstimate(cfg, batch, seq, layer.sharedDim));
  if (values.input !== undefined) {
    x = readInput(values.input, D);
  } else {
    x = normal(foldIn(prngKey(seed), 2), [batch, seq, D], cfg.dtype);
  }
  const [B, S] = x.shape as [number, number, number];
  if (values.input !== undefined) checkMemory("run", forwardEstimate(cfg, B, S, layer.sharedDim));
  // NaN or Inf in a weight or the input would run through to the output unnoticed (the gate check sees only the gate's)
  checkFinite({ ...layer.params, ...layer.quantized }, `--checkpoint ${values.checkpoint} layer ${layer.layer}`);
  if (values.input !== undefined) checkFinite(x, `--input ${values.input}`);
  log(
    `forward on x [${B},${S},${D}] ${cfg.dtype} (${layer.module}, E=${cfg.numExperts}, K=${cfg.numExpertsPerTok}, H=${cfg.moeMlpDim}${layer.sharedDim > 0 ? `, shared ${layer.sharedDim}` : ""})`,
  );
  const t1 = performance.now();
  const o = moeLayerForward(layer, x);
  const ms = performance.now() - t1;
  checkFinite(o.output, "the layer output");
  const perExpert = Array.from(bincount(o.topKIndices_BSK, cfg.numExperts).data);
  if (out !== undefined) {
    const overwrite = values.force === true;
    if (out.endsWith(".npy")) writeNpy(out, o.output, { overwrite });
    else {
      const tensors = { output: o.output, topk_indices: o.topKIndices_BSK, topk_weights: o.topKWeights_BSK, gate_logits: o.gateLogits_BSE };
      saveSafetensors(out, tensors, { overwrite });
    }
    log(`wrote ${path.resolve(out)}`);
  }
  const parameters = layerParameterCount(layer);
  const served = Object.values(layer.quantized ?? {});
  const storage = quantizedStorage(served);
  const report = {
    checkpoint: values.checkpoint,
    layer: layer.layer,
    family: layer.hf?.family ?? null,
    module: layer.module,
    decoderBlock: cfg.decoderBlock,
    parameters,
    input: [B, S, D],
    output: { shape: o.output.shape, ...stats(o.output) },
    tokensPerExpert: perExpert,
    routedAssignments: B * S * cfg.numExpertsPerTok,
    droppedAssignments: o.keptMask_BSK === undefined ? 0 : Array.from(o.keptMask_BSK.data).filter((v) => v === 0).length,
    lbLoss: o.lbLoss?.item() ?? null,
    loadMs: Number(loadMs.toFixed(2)),
    forwardMs: Number(ms.toFixed(2)),
    backend: runtimeInfo().backend,
    caveats: layer.caveats,
    quantizedExperts:
      served.length === 0 ? null : { format: served[0]!.format, bytes: storage.bytes, bytesPerWeight: storage.bytes / storage.weights },
  };
  if (values.json === true) {
    console.log(JSON.stringify(report, null, 2));
    return 0;
  }
  const s = report.output;
  console.log(
    `layer           ${layer.layer} of ${values.checkpoint}  (${report.family ?? cfg.decoderBlock}, ${layer.module}, ${parameters} parameters)`,
  );
  console.log(
    `output          [${s.shape.join(",")}]  mean ${s.mean.toExponential(3)}  std ${s.std.toExponential(3)}  min ${s.min.toFixed(4)}  max ${s.max.toFixed(4)}`,
  );
  console.log(`tokens/expert   ${perExpert.join(" ")}`);
  console.log(`dropped         ${report.droppedAssignments} of ${report.routedAssignments} assignments`);
  console.log(`lb_loss         ${report.lbLoss === null ? "none (load_balance_loss_weight = 0)" : report.lbLoss.toExponential(4)}`);
  const q = report.quantizedExperts;
  if (q !== null) console.log(`experts held    ${q.format}, ${q.bytes} bytes (${q.bytesPerWeight.toFixed(3)} per weight, scales included)`);
  console.log(`load            ${report.loadMs} ms, forward ${report.forwardMs} ms (${report.backend} backend)`);
  return 0;
}
