import { moeConfig, RoutedMoE, normal, prngKey, moe as moeApi, ops, parallel } from "moekit";

const { routedMoeForwardParallel, shardWeights, meshShardWeights } = moeApi;
const { sliceAxis, concatenate } = ops;
const { runSpmd, Mesh } = parallel;

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

// Expert × tensor parallelism on a 4-rank mesh: 2 expert shards × 2 tensor shards. Each rank holds 4 experts' wi_0/wi_1
// [4,16,16] and wo [4,16,16] (half of the hidden dim); wo's partial outputs are psum_scattered over the embedding dim,
// so each rank returns its 2 batch rows × 8 of the 16 output columns.
const mesh = await runSpmd(4, async (group) => {
  const m = new Mesh(group, { expert: 2, tensor: 2 });
  const b = m.coords.expert;
  const r = await routedMoeForwardParallel(
    cfg,
    m,
    "batch_sharded",
    meshShardWeights(cfg, moe.weights, m),
    sliceAxis(x, 0, 2 * b, 2 * b + 2),
  );
  return { b, t: m.coords.tensor, out: r.output };
});
const blocks = [0, 1].map((b) =>
  concatenate(
    [0, 1].map((t) => mesh.find((p) => p.b === b && p.t === t).out),
    2,
  ),
);
const yt = concatenate(blocks, 0);
const maxDiffTp = Math.max(...yt.toArray().map((v, i) => Math.abs(v - ref.data[i])));
console.log("EP=2 x TP=2 output", yt.shape, maxDiffTp < 1e-5 ? "matches EP=1" : `DIFFERS from EP=1 by ${maxDiffTp}`);
