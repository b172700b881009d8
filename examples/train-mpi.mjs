// Data-parallel × expert-parallel training over MPI ranks: `mpirun -np 2 node examples/train-mpi.mjs` (1, 2 or 4
// ranks; run without mpirun, it starts itself under mpirun with 2). Each rank holds its share of the experts and
// trains on its share of the batch; tokens reach their experts by ragged all-to-all. The gate is replicated: each rank's gradient of it
// is its part, summed over the ranks (allReduce) before AdamW. Rank 0 then gathers the expert shards and compares the
// final weights with the same training run on one process.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import {
  moeConfig,
  RoutedMoE,
  routedMoeForward,
  normal,
  prngKey,
  tensor,
  valueAndGrad,
  valueAndGradAsync,
  moe as moeApi,
  ops,
  optim,
  parallel,
} from "moekit";

const { routedMoeForwardParallel, shardWeights } = moeApi;
const { sum, sub, square, sliceAxis, concatenate } = ops;
const { AdamW } = optim;
const RANKS = 2;
const STEPS = 15;

if (process.env.OMPI_COMM_WORLD_SIZE === undefined) {
  const reason = parallel.mpiUnavailableReason();
  if (reason !== undefined) {
    console.log(`MPI unavailable: ${reason}`);
    process.exit(0);
  }
  const args = [...parallel.mpirunArgs(RANKS), process.execPath, fileURLToPath(import.meta.url)];
  process.stdout.write(execFileSync("mpirun", args, { encoding: "utf8" }));
  process.exit(0);
}

const cfg = moeConfig({ num_experts: 8, num_experts_per_tok: 2, emb_dim: 16, moe_mlp_dim: 32, decoder_block: "mixtral", dtype: "float32" });
const init = new RoutedMoE(cfg, { key: prngKey(0) }).weights;
const x = normal(prngKey(1), [4, 8, 16]);
const target = normal(prngKey(2), [4, 8, 16]);
const adam = { learningRate: 0.01, weightDecay: 0 };
const copy = (t) => tensor(Float32Array.from(t.data), t.shape, "float32");
const single = [init.gateKernel, init.wi0, init.wi1, init.wo].map(copy); // for the one-process run (rank 0)

const group = parallel.joinMpi();
const [B, E] = [x.shape[0], cfg.numExperts];
if (B % group.size !== 0 || E % group.size !== 0)
  throw new Error(`${group.size} ranks: run on a number that divides both ${B} batch rows and ${E} experts`);
const b = B / group.size;
const rows = (t) => sliceAxis(t, 0, b * group.rank, b * (group.rank + 1)); // this rank's batch rows
const mine = shardWeights(init, group.rank, group.size); // this rank's experts; the gate in full
const params = [mine.gateKernel, mine.wi0, mine.wi1, mine.wo].map(copy);
const opt = new AdamW(params, adam);
const loss = async (gateKernel, wi0, wi1, wo) => {
  const r = await routedMoeForwardParallel(cfg, group, "batch_sharded", { gateKernel, wi0, wi1, wo }, rows(x));
  return sum(square(sub(r.output, rows(target))));
};
const losses = [];
for (let step = 0; step < STEPS; step++) {
  const { value, grads } = await valueAndGradAsync(loss)(...params);
  losses.push((await group.allReduce(value)).item()); // the whole batch's loss
  grads[0] = await group.allReduce(grads[0]); // the replicated gate: the ranks' parts summed
  opt.step(grads);
}

// the experts back in one place, and the same training on one process
const gathered = await group.allGather(params[1]);
if (group.rank === 0) {
  const one = new AdamW(single, adam);
  const f = (gateKernel, wi0, wi1, wo) => sum(square(sub(routedMoeForward(cfg, { gateKernel, wi0, wi1, wo }, x).output, target)));
  for (let step = 0; step < STEPS; step++) one.step(valueAndGrad(f)(...single).grads);
  const diff = (a, b) => Math.max(...a.toArray().map((v, i) => Math.abs(v - b.data[i])));
  const wi0 = concatenate(gathered, 0);
  const [first, last] = [losses[0], losses.at(-1)];
  console.log(
    `${group.size} MPI ranks: loss ${first.toFixed(2)} -> ${last.toFixed(2)} in ${STEPS} steps`,
    last < 0.9 * first ? "(decreasing)" : "(NOT decreasing)",
  );
  console.log(
    `final weights vs one process: gate ${diff(params[0], single[0]).toExponential(1)}, wi_0 ${diff(wi0, single[1]).toExponential(1)}`,
  );
}
