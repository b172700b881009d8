// Expert-parallel golden cases: N in-process ranks, each with its shard; results reassembled.
import { MoeError } from "../../core/errors.js";
import type { Tensor } from "../../core/tensor.js";
import { valueAndGradAsync } from "../../autodiff/grad.js";
import { stopGradient } from "../../autodiff/graph.js";
import { add, div, mul } from "../../ops/elementwise.js";
import { concatenate, reshape, sliceAxis, stack } from "../../ops/movement.js";
import { sum } from "../../ops/reduce.js";
import type { MoeConfig } from "../../moe/config.js";
import { expertShard, type EpPath } from "../../moe/expert-parallel.js";
import { routedMoeForwardParallel } from "../../moe/routed-moe.js";
import { runSpmd } from "../../parallel/local-group.js";
import { inputTensor, type GoldenCase } from "./case.js";
import { routedWeights, routingOutputs, sharedMlp, type Produced } from "./single.js";

const EXPERT_SHARDED = new Set(["wi_0", "wi_1", "wo", "wi_0_bias", "wi_1_bias", "wo_bias", "per_expert_scale"]);
const NON_DIFF = new Set(["cotangent", "random_top_k_indices"]);

function resolvePath(c: GoldenCase, cfg: MoeConfig, batch: number): EpPath {
  const want: EpPath = cfg.useRingOfExperts ? "ring_of_experts" : batch > 1 ? "batch_sharded" : "batch_replicated";
  if (c.expert_parallelism_path !== "none" && c.expert_parallelism_path !== want) {
    throw new MoeError(`[golden] ${c.name}: case says ${c.expert_parallelism_path}, config and batch give ${want}`);
  }
  return want;
}

export async function runExpertParallelCase(c: GoldenCase, cfg: MoeConfig): Promise<Produced> {
  const N = c.expert_parallelism;
  const full: Record<string, Tensor> = Object.fromEntries(c.input_names.map((n) => [n, inputTensor(c, n)]));
  const B = full.x!.shape[0]!;
  const path = resolvePath(c, cfg, B);
  // the batch is sharded over the expert axis when it has more than one row (is_batch_sharded_by_ep);
  // a one-row batch is replicated, also on the ring path (all_gather then yields N copies)
  const sharded = B > 1;
  if (sharded && B % N !== 0) throw new MoeError(`[golden] ${c.name}: batch ${B} not divisible by ${N} expert shards`);
  const batchSlice = (t: Tensor, r: number): Tensor => (sharded ? sliceAxis(t, 0, (r * B) / N, ((r + 1) * B) / N) : t);
  const diffNames = c.input_names.filter((n) => !NON_DIFF.has(n));

  const perRank = await runSpmd(N, async (group) => {
    const r = group.rank;
    const local = (n: string): Tensor =>
      EXPERT_SHARDED.has(n) ? expertShard(full[n]!, r, N) : n === "x" || n === "gate_inputs" ? batchSlice(full[n]!, r) : full[n]!;
    // forward-only cases give no cotangent: then no gradients
    const ct = full.cotangent === undefined ? undefined : batchSlice(full.cotangent, r);
    // the injected random draw covers the tokens this rank routes: its batch slice, or on the ring path
    // the all-gathered batch (N copies of a one-row batch)
    const draw = full.random_top_k_indices;
    const ringDraw = (t: Tensor): Tensor => (sharded ? t : concatenate(new Array<Tensor>(N).fill(t), 0));
    const rng = draw === undefined ? undefined : { topKIndices: path === "ring_of_experts" ? ringDraw(draw) : batchSlice(draw, r) };
    const out: Produced = {};
    let ep: Awaited<ReturnType<typeof routedMoeForwardParallel>>["ep"] | undefined;
    const f = async (...args: Tensor[]): Promise<Tensor> => {
      const named = Object.fromEntries(diffNames.map((n, i) => [n, args[i]!]));
      const o = await routedMoeForwardParallel(cfg, group, path, routedWeights(named), named.x!, { gateInputs: named.gate_inputs, rng });
      routingOutputs(o, out);
      ep = o.ep;
      let y = o.output;
      const mlp = sharedMlp(cfg, named);
      if (mlp !== undefined) {
        out.routed_output = o.output;
        out.shared_output = mlp.forward(named.x!);
        y = add(o.output, out.shared_output);
        out.output = y;
      }
      // unmapped outputs (lb_loss; the whole output when the batch is replicated) get cotangent/N per rank
      let obj = sum(mul(y, ct ?? y));
      if (!sharded) obj = div(obj, N);
      return o.lbLoss === undefined ? obj : add(obj, div(o.lbLoss, N));
    };
    if (ct === undefined) {
      await f(...diffNames.map(local));
      return { out, ep: ep!, grads: undefined };
    }
    const { grads } = await valueAndGradAsync(f)(...diffNames.map(local));
    return { out, ep: ep!, grads: Object.fromEntries(diffNames.map((n, i) => [n, stopGradient(grads[i]!)])) };
  });

  const first = perRank[0]!;
  const produced: Produced = { ...first.out };
  const cat = (name: string): Tensor =>
    concatenate(
      perRank.map((p) => p.out[name] as Tensor),
      0,
    );
  if (sharded) {
    for (const n of [
      "output",
      "routed_output",
      "shared_output",
      "top_k_indices",
      "top_k_weights",
      "gate_logits",
      "pre_bias_logits",
      "kept_mask",
    ]) {
      if (first.out[n] !== undefined) produced[n] = cat(n);
    }
  }
  for (const n of first.grads === undefined ? [] : diffNames) {
    const gs = perRank.map((p) => p.grads![n]!);
    const batchLocal = (n === "x" || n === "gate_inputs") && sharded;
    produced[`grad_${n}`] = EXPERT_SHARDED.has(n) || batchLocal ? concatenate(gs, 0) : gs.reduce((a, b) => add(a, b));
  }
  if (first.out.lb_loss !== undefined) produced.lb_loss_per_shard = stack(perRank.map((p) => reshape(p.out.lb_loss as Tensor, [])));
  if (first.out.bias_updates !== undefined) produced.bias_updates_per_shard = stack(perRank.map((p) => p.out.bias_updates as Tensor));
  if (first.ep.allShardsGroupSizes !== undefined) produced.ep_all_shards_group_sizes = first.ep.allShardsGroupSizes;
  if (first.ep.raggedBufferSize !== undefined) produced.ep_ragged_buffer_size = first.ep.raggedBufferSize;
  produced.ep_local_group_sizes = stack(perRank.map((p) => p.ep.localGroupSizes));
  return produced;
}
