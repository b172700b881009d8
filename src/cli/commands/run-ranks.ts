// `moekit run --ranks N`: the layer with expert parallelism over N MPI ranks. Started outside an MPI job, the
// command starts itself under `mpirun -np N`; inside, every rank builds the same seeded layer and input, runs its
// experts and its slice of the batch (routedMoeForwardParallel, batch_sharded), plus the shared experts on that slice
// where the layer has them, and gathers the result, which rank 0 reports as one rank would.
import { spawn } from "node:child_process";
import { constants as osConstants } from "node:os";
import { MoeError } from "../../core/errors.js";
import type { Tensor } from "../../core/tensor.js";
import { RoutedMoE, routedMoeForwardParallel, shardWeights, type MoeOutput, type ForwardOptions } from "../../moe/routed-moe.js";
import type { MoeConfig } from "../../moe/config.js";
import { calculateLoadBalanceUpdates } from "../../moe/load-balance.js";
import { concatenate, sliceAxis } from "../../ops/movement.js";
import { add, div } from "../../ops/elementwise.js";
import { RoutedAndSharedMoE, sharedExpertsForward } from "../../moe/routed-and-shared-moe.js";
import { joinMpi, mpiUnavailableReason } from "../../parallel/mpi-group.js";
import { mpirunArgs, mpirunMissing } from "../../parallel/mpi-launch.js";
import { agreeAcrossRanks } from "../../parallel/agree.js";
import type { Group } from "../../parallel/group.js";

/** Whether this process is a rank of an MPI job (Open MPI's or a PMI launcher's environment). */
export const inMpiJob = (): boolean => process.env.OMPI_COMM_WORLD_SIZE !== undefined || process.env.PMI_SIZE !== undefined;

/**
 * Starts this command again on `ranks` MPI ranks (`mpirun`, output passed through); returns its exit code. SIGINT and
 * SIGTERM sent to this process go on to mpirun, which ends its ranks (they outlived a parent stopped alone).
 */
export async function launchRanks(ranks: number): Promise<number> {
  const missing = mpiUnavailableReason() ?? mpirunMissing();
  if (missing !== undefined) throw new MoeError(`[run] --ranks ${ranks}: MPI unavailable: ${missing}`);
  const child = spawn("mpirun", [...mpirunArgs(ranks), process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: "inherit",
  });
  let stopped: NodeJS.Signals | undefined;
  const forward = (signal: NodeJS.Signals): void => void child.kill((stopped = signal));
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.on("error", (e) => reject(new MoeError(`[run] mpirun: ${e.message}`)));
      // stopped by a signal: the shell's 128 + n, whatever mpirun's own code
      const bySignal = (s: NodeJS.Signals): number => 128 + (osConstants.signals[s] ?? 0);
      child.on("close", (code, signal) =>
        resolve(stopped !== undefined ? bySignal(stopped) : (code ?? (signal === null ? 1 : bySignal(signal)))),
      );
    });
  } finally {
    process.off("SIGINT", forward);
    process.off("SIGTERM", forward);
  }
}

/** This process's rank of the job, checked to have `ranks` ranks. */
export function joinRanks(ranks: number): Group {
  const group = joinMpi();
  if (group.size !== ranks) throw new MoeError(`[run] --ranks ${ranks}, but the MPI job has ${group.size} ranks`);
  return group;
}

/** --ranks n splits the batch and the experts: checked before mpirun starts n processes to say it n times. */
export function checkRanksFit(cfg: MoeConfig, B: number, n: number): void {
  if (B % n !== 0) throw new MoeError(`[run] --batch ${B} must be divisible by --ranks ${n} (each rank runs B/${n} rows)`);
  if (cfg.numExperts % n !== 0)
    throw new MoeError(`[run] num_experts=${cfg.numExperts} must be divisible by --ranks ${n} (each rank holds E/${n} experts)`);
}

/**
 * One rank's part of the layer's forward on `x_BSD` (every rank passes the same layer and input), gathered: every
 * rank returns the whole output, routing and losses, as the single-process forward would. A RoutedAndSharedMoE's
 * shared MLP is replicated: each rank runs it on its slice of the batch.
 */
export async function forwardOnRanks(
  group: Group,
  layer: RoutedMoE | RoutedAndSharedMoE,
  x_BSD: Tensor,
  opts: ForwardOptions,
): Promise<MoeOutput> {
  const cfg: MoeConfig = layer.config;
  const routed = layer instanceof RoutedAndSharedMoE ? layer.routedMoe : layer;
  const n = group.size;
  const B = x_BSD.shape[0]!;
  checkRanksFit(cfg, B, n);
  await agreeAcrossRanks(group, "the layer", {
    config: cfg,
    input: x_BSD.shape,
    weights: Object.fromEntries(layer.parameters().map(([k, t]) => [k, t.shape])),
  });
  const b = B / n;
  const w = shardWeights(routed.weights, group.rank, n);
  const x = sliceAxis(x_BSD, 0, group.rank * b, (group.rank + 1) * b);
  const o = await routedMoeForwardParallel(cfg, group, "batch_sharded", w, x, opts);
  const y = layer instanceof RoutedAndSharedMoE ? add(o.output, sharedExpertsForward(cfg, layer.weights.shared, x, opts)) : o.output;
  const topK = concatenate(await group.allGather(o.topKIndices_BSK));
  return {
    ...o,
    output: concatenate(await group.allGather(y)),
    topKIndices_BSK: topK,
    keptMask_BSK: o.keptMask_BSK === undefined ? undefined : concatenate(await group.allGather(o.keptMask_BSK)),
    // each rank's loss is on its tokens; their mean is the layer's
    lbLoss: o.lbLoss === undefined ? undefined : div(await group.allReduce(o.lbLoss), n),
    biasUpdates: o.biasUpdates === undefined ? undefined : calculateLoadBalanceUpdates(topK, cfg.numExperts, cfg.routedBiasUpdateRate),
  };
}
