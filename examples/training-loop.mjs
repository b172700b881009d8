// A training loop: a Mixtral-style MoE layer fits a fixed random target with AdamW, which updates the parameters
// in place (natively, multi-threaded). Each step's gradients are handed back with recycle() once applied, so that
// the native backward can write the next ones into the same memory (the pool keeps buffers of 1 MiB and more: the
// expert weights here are 8 x 128 x 256 floats).
import { moeConfig, RoutedMoE, routedMoeForward, normal, prngKey, valueAndGrad, recycle, releaseRecycled, ops, optim } from "moekit";

const { sum, sub, square } = ops;
const { AdamW } = optim;

const cfg = moeConfig({
  num_experts: 8,
  num_experts_per_tok: 2,
  emb_dim: 128,
  moe_mlp_dim: 256,
  decoder_block: "mixtral",
  dtype: "float32",
});
const moe = new RoutedMoE(cfg, { key: prngKey(0) });
const x = normal(prngKey(1), [2, 16, 128]);
const target = normal(prngKey(2), [2, 16, 128]);
const loss = (gateKernel, wi0, wi1, wo) => sum(square(sub(routedMoeForward(cfg, { gateKernel, wi0, wi1, wo }, x).output, target)));

const params = [moe.weights.gateKernel, moe.weights.wi0, moe.weights.wi1, moe.weights.wo];
const opt = new AdamW(params, { learningRate: 0.01, weightDecay: 0 });
const losses = [];
for (let step = 0; step < 20; step++) {
  const { value, grads } = valueAndGrad(loss)(...params);
  losses.push(value.item());
  opt.step(grads); // params updated in place
  recycle(grads); // applied: the storage may be reused
}
releaseRecycled();
const [first, last] = [losses[0], losses.at(-1)];
console.log(
  `loss ${first.toFixed(2)} -> ${last.toFixed(2)} in ${losses.length} steps`,
  last < 0.9 * first ? "(decreasing)" : "(NOT decreasing)",
);
