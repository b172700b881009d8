import { moeConfig, RoutedMoE, normal, prngKey, moe as moeApi, ops, parallel } from "moekit";

const { routedMoeForwardParallel, shardWeights } = moeApi;
const { sliceAxis, concatenate } = ops;
const { runSpmd } = parallel;

const cfg = moeConfig({ num_experts: 8, num_experts_per_tok: 2, emb_dim: 16, moe_mlp_dim: 32, decoder_block: "mixtral", dtype: "float32" });
const moe = new RoutedMoE(cfg, { key: prngKey(0) });
const x = normal(prngKey(1), [4, 8, 16]); // batch 4, sharded over 2 ranks

// Each rank holds 4 of the 8 experts and 2 of the 4 batch rows; tokens travel by ragged all-to-all.
const outs = await runSpmd(2, async (group) => {
  const rows = sliceAxis(x, 0, 2 * group.rank, 2 * group.rank + 2);
  const r = await routedMoeForwardParallel(cfg, group, "batch_sharded", shardWeights(moe.weights, group.rank, group.size), rows);
  return r.output;
});
const y = concatenate(outs, 0);
const ref = moe.forward(x).output;
const maxDiff = Math.max(...y.toArray().map((v, i) => Math.abs(v - ref.data[i])));
console.log("EP=2 output", y.shape, maxDiff < 1e-5 ? "matches EP=1" : `DIFFERS from EP=1 by ${maxDiff}`);
