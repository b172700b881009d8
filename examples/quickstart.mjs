import { moeConfig, RoutedMoE, routedMoeForward, normal, prngKey, valueAndGrad, ops } from "moekit";

const { sum, mul, add } = ops;

// A Mixtral-style layer: 8 experts, top-2, SwiGLU, load-balance loss.
const cfg = moeConfig({
  num_experts: 8,
  num_experts_per_tok: 2,
  emb_dim: 16,
  moe_mlp_dim: 32,
  decoder_block: "mixtral",
  load_balance_loss_weight: 0.01,
  dtype: "float32",
});
const moe = new RoutedMoE(cfg, { key: prngKey(0) });
const x = normal(prngKey(1), [2, 4, 16]); // [batch, seq, emb]

const { output, lbLoss, topKIndices_BSK } = moe.forward(x);
console.log("output", output.shape, "lb_loss", lbLoss.item().toFixed(5));
console.log("experts of token 0:", topKIndices_BSK.toArray().slice(0, 2));

// Training: gradients of a loss with respect to the input and every weight.
const loss = (x, gateKernel, wi0, wi1, wo) => {
  const o = routedMoeForward(cfg, { gateKernel, wi0, wi1, wo }, x);
  return add(sum(mul(o.output, o.output)), o.lbLoss);
};
const { gateKernel, wi0, wi1, wo } = moe.weights;
const { value, grads } = valueAndGrad(loss)(x, gateKernel, wi0, wi1, wo);
console.log("loss", value.item().toFixed(5), "grad wo", grads[4].shape);
