import { ConfigError, MoeError } from "../../core/errors.js";
import { stats } from "../summary.js";
import { parseSets, withOverrides } from "../sets.js";
import { moeConfig, splitMoeKeys, unreadKeys, type MoeConfig } from "../../moe/config.js";
import { getPreset, listPresets, type Preset } from "../../moe/presets.js";
import { RoutedMoE, type MoeOutput } from "../../moe/routed-moe.js";
import { layerParamShapes, RoutedAndSharedMoE, sharedExpertDim } from "../../moe/routed-and-shared-moe.js";
import { bincount } from "../../ops/indexing.js";
import { foldIn, normal, prngKey } from "../../nn/random.js";
import { runCheckpointCommand, wantsCheckpoint } from "./run-checkpoint.js";
import { readKeysFile } from "../config-file.js";
import { applyMaxMemory, intFlag, parseCommandArgs } from "../flags.js";
import { checkMemory } from "../../core/memory.js";
import { forwardEstimate, weightEstimate } from "../../moe/memory-estimate.js";
import { runtimeInfo } from "../../backends/select.js";
import { checkFinite } from "../../moe/finite.js";
import { checkRanksFit, forwardOnRanks, inMpiJob, joinRanks, launchRanks } from "./run-ranks.js";

const HELP = `Usage: moekit run (--preset NAME | --config FILE) [options]
       moekit run --checkpoint PATH [--layer N] ...   (see moekit run --checkpoint PATH --help)

Builds a MoE layer with MaxText's initialisers (seeded), runs it on a seeded random input and prints
the output summary and routing statistics (tokens per expert, dropped assignments, lb_loss).

Options:
  --preset NAME     a preset from \`moekit presets\` (tiny-* twins run in well under a second)
  --config FILE     MaxText MoE keys as JSON or YAML
  --skip-other-keys with --config: ignore the keys the MoE layer does not read (a whole MaxText model
                    YAML, base_emb_dim and base_moe_mlp_dim included); they are listed on stderr
  --set KEY=VALUE   override one MaxText key (repeatable), e.g. --set sparse_matmul=false --set capacity_factor=1.0
                    (capacity_factor drops tokens on the dense path only: the sparse path is dropless)
  --batch B         batch size (default 2)
  --seq S           sequence length (default 8)
  --seed N          PRNG seed for weights and input (default 0)
  --repeat N        run the forward N times (default 1): prints the first and the median of the others
                    (the first also pays one-time work, e.g. rounding float32 weights for a bfloat16 layer)
  --max-params N    refuse layers with more parameters (default 2e8; the reference backend is slow)
  --max-memory BYTES  refuse when weights and activations are estimated above BYTES (default: 75% of free memory)
  --ranks N         expert parallelism over N MPI ranks (started under mpirun; shared experts run on each
                    rank's rows): the output of one rank, bit for bit on ref, to float32 rounding on native
  --json            machine-readable output`;

interface LayerChoice {
  cfg: MoeConfig;
  shared: boolean;
  label: string;
}

function keysFrom(values: { preset?: string; config?: string; "skip-other-keys"?: boolean }): {
  keys: Record<string, unknown>;
  preset?: Preset;
  label: string;
} {
  if (values.preset !== undefined && values.config !== undefined) throw new MoeError("give --preset NAME or --config FILE, not both");
  if (values["skip-other-keys"] === true && values.config === undefined) throw new MoeError("--skip-other-keys goes with --config FILE");
  if (values.preset !== undefined) {
    const preset = getPreset(values.preset);
    return { keys: preset.keys, preset, label: preset.name };
  }
  if (values.config === undefined) throw new MoeError("give --preset NAME or --config FILE (see --help)");
  const keys = readKeysFile(values.config);
  if (values["skip-other-keys"] !== true) return { keys, label: values.config };
  const { moe, other } = splitMoeKeys(keys);
  if (other.length > 0)
    console.error(
      `[moekit] ${values.config}: skipping ${other.length} ${other.length === 1 ? "key" : "keys"} the MoE layer does not read: ${other.join(", ")}`,
    );
  return { keys: moe, label: values.config };
}

function configFrom(values: { preset?: string; config?: string; set?: string[]; "skip-other-keys"?: boolean }): LayerChoice {
  const sets = parseSets(values.set);
  const { keys, preset, label } = keysFrom(values);
  const cfg = moeConfig(withOverrides(keys, sets));
  const shared =
    preset !== undefined
      ? preset.layer === "routed_and_shared"
      : cfg.sharedExperts > 0 && ["deepseek", "gemma4", "llama4"].includes(cfg.decoderBlock);
  return { cfg, shared, label };
}

export async function runCommand(argv: string[]): Promise<number> {
  if (wantsCheckpoint(argv)) return runCheckpointCommand(argv);
  const { values } = parseCommandArgs({
    args: argv,
    options: {
      preset: { type: "string" },
      config: { type: "string" },
      "skip-other-keys": { type: "boolean" },
      set: { type: "string", multiple: true },
      batch: { type: "string", default: "2" },
      seq: { type: "string", default: "8" },
      seed: { type: "string", default: "0" },
      repeat: { type: "string", default: "1" },
      "max-params": { type: "string", default: "2e8" },
      "max-memory": { type: "string" },
      ranks: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help === true) {
    console.log(HELP);
    return 0;
  }
  const B = intFlag(values.batch, "--batch", 1);
  const S = intFlag(values.seq, "--seq", 1);
  const seed = intFlag(values.seed, "--seed", 0);
  const repeat = intFlag(values.repeat, "--repeat", 1);
  const maxParams = intFlag(values["max-params"], "--max-params", 0);
  applyMaxMemory(values["max-memory"]);
  const { cfg, shared, label } = configFrom(values);
  const D = cfg.expertInputDim;
  const approxParams = cfg.numExperts * 3 * D * cfg.moeMlpDim + D * cfg.numExperts;
  if (approxParams > maxParams) {
    throw new MoeError(
      `${label} has ~${approxParams.toExponential(2)} routed parameters, over --max-params ${values["max-params"]}; ${listPresets().some((p) => p.name === `tiny-${label}`) ? `try the tiny-${label} preset` : "raise --max-params"}`,
    );
  }
  checkMemory("run", {
    ...weightEstimate(layerParamShapes(cfg, shared), cfg.weightDtype),
    ...forwardEstimate(cfg, B, S, shared ? sharedExpertDim(cfg) : 0),
  });
  // checked before --ranks starts its ranks (each printed the layer's refusal, then MPI's abort)
  if (shared && cfg.dropoutRate > 0)
    throw new ConfigError(
      "dropout_rate",
      cfg.dropoutRate,
      "moekit run runs an inference forward, where MaxText applies no dropout: set it to 0",
    );
  const ranks = values.ranks === undefined ? undefined : intFlag(values.ranks, "--ranks", 1);
  if (ranks !== undefined) checkRanksFit(cfg, B, ranks);
  if (ranks !== undefined && !inMpiJob()) return await launchRanks(ranks);
  const group = ranks === undefined ? undefined : joinRanks(ranks);
  const key = prngKey(seed);
  const log = (m: string): void => {
    if (values.json !== true && (group?.rank ?? 0) === 0) console.error(`[moekit] ${m}`);
  };
  for (const c of unreadKeys(cfg)) log(`note: ${c}`);
  log(
    `initialising ${label} (${shared ? "RoutedAndSharedMoE" : "RoutedMoE"}, E=${cfg.numExperts}, K=${cfg.numExpertsPerTok}, D=${D}, H=${cfg.moeMlpDim}, ${cfg.sparseMatmul ? "sparse" : "dense"})`,
  );
  const layer = shared ? new RoutedAndSharedMoE(cfg, { key: foldIn(key, 1) }) : new RoutedMoE(cfg, { key: foldIn(key, 1) });
  const x = normal(foldIn(key, 2), [B, S, D], cfg.dtype);
  log(`forward on x [${B},${S},${D}] ${cfg.dtype}`);
  // initialised weights are finite, but a config's scale can overflow them or the output: named, not printed as NaN
  // (scanned outside the timed forwards)
  checkFinite({ input: x, weights: layer.paramRecord() }, label);
  const times: number[] = [];
  let o: MoeOutput | undefined;
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now();
    const opts = { rng: foldIn(key, 3) };
    o = group === undefined ? layer.forward(x, opts) : await forwardOnRanks(group, layer, x, opts);
    times.push(performance.now() - t0);
  }
  if (o === undefined) throw new MoeError("--repeat must be at least 1");
  if (group !== undefined && group.rank !== 0) return 0;
  checkFinite(o.output, `${label} output`);
  const later = times.slice(1).sort((a, b) => a - b);
  const steadyMs = later.length === 0 ? null : Number(later[later.length >> 1]!.toFixed(2));
  const perExpert = Array.from(bincount(o.topKIndices_BSK, cfg.numExperts).data);
  const dropped = o.keptMask_BSK === undefined ? 0 : Array.from(o.keptMask_BSK.data).filter((v) => v === 0).length;
  const report = {
    layer: label,
    parameters: layer.numParameters(),
    input: [B, S, D],
    output: { shape: o.output.shape, ...stats(o.output) },
    tokensPerExpert: perExpert,
    routedAssignments: B * S * cfg.numExpertsPerTok,
    droppedAssignments: dropped,
    expertCapacity: o.expertCapacity ?? null,
    lbLoss: o.lbLoss?.item() ?? null,
    biasUpdates: o.biasUpdates === undefined ? null : Array.from(o.biasUpdates.data),
    dtype: cfg.dtype,
    weightDtype: cfg.weightDtype,
    backend: runtimeInfo().backend,
    ...(ranks === undefined ? {} : { ranks }),
    forwardMs: Number(times[0]!.toFixed(2)),
    repeatedForwardMs: steadyMs,
  };
  if (values.json === true) {
    console.log(JSON.stringify(report, null, 2));
    return 0;
  }
  const s = report.output;
  console.log(`layer           ${label}  (${report.parameters} parameters)`);
  console.log(
    `output          [${s.shape.join(",")}]  mean ${s.mean.toExponential(3)}  std ${s.std.toExponential(3)}  min ${s.min.toFixed(4)}  max ${s.max.toFixed(4)}`,
  );
  console.log(`tokens/expert   ${perExpert.join(" ")}`);
  console.log(
    `dropped         ${dropped} of ${report.routedAssignments} assignments${o.expertCapacity !== undefined ? ` (capacity ${o.expertCapacity} per expert per group)` : ""}`,
  );
  console.log(
    `lb_loss         ${report.lbLoss === null ? "none (load_balance_loss_weight = 0 or inference)" : report.lbLoss.toExponential(4)}`,
  );
  if (report.biasUpdates !== null) console.log(`bias_updates    ${report.biasUpdates.map((v) => v.toFixed(4)).join(" ")}`);
  const runs = steadyMs === null ? "" : `, then ${steadyMs} ms (median of ${repeat - 1} more)`;
  console.log(
    `forward         ${report.forwardMs} ms${runs} (${report.backend} backend, ${cfg.dtype} activations, ${cfg.weightDtype} weights${ranks === undefined ? "" : `, ${ranks} MPI ranks`})`,
  );
  return 0;
}
