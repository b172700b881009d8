import sys, os, time
import numpy as np
sys.path.insert(0, os.path.dirname(__file__))
import ref
from gen import make_case


def drops(cfg, T, res, info):
    return (res["kept_mask"] == 0).any()


def nodrops(cfg, T, res, info):
    return not (res["kept_mask"] == 0).any()


def clamps(cfg, T, res, info):
    return info["c0"] > 0 and info["c1"] > 0


def group_changes(cfg, T, res, info):
    g, _ = ref.gate(cfg, T)
    _, plain = ref.topk(g, cfg["num_experts_per_tok"])
    return not np.array_equal(np.sort(plain, -1), np.sort(res["top_k_indices"], -1))


def group_would_change(cfg, T, res, info):
    # groups configured but ignored (model is not deepseek3): group-limited choice would differ
    g, _ = ref.gate(cfg, T)
    m, _ = ref.expert_group_mask(cfg, g)
    _, lim = ref.topk(np.where(m > 0, g, -np.inf), cfg["num_experts_per_tok"])
    return not np.array_equal(np.sort(lim, -1), np.sort(res["top_k_indices"], -1))


def has_dup(cfg, T, res, info):
    i = res["top_k_indices"]
    return (i[..., 0] == i[..., 1]).any()


def all_(*fs):
    return lambda *a: all(f(*a) for f in fs)


def exact_fill(cfg, T, res, info):
    if (res["kept_mask"] == 0).any():
        return False
    C = res["expert_capacity"]
    idx = res["top_k_indices"]
    E = cfg["num_experts"]
    return max(np.bincount(r.ravel(), minlength=E).max() for r in idx) == C


def dup_both_kept(cfg, T, res, info):
    i = res["top_k_indices"]; k = res["kept_mask"]
    return ((i[..., 0] == i[..., 1]) & (k[..., 0] == 1) & (k[..., 1] == 1)).any() and (k == 0).any()


S8 = dict(emb_dim=8, moe_mlp_dim=8, mlp_dim=8)

SPECS = [
    # ---------------- routing variants
    ("f01_kimi_sigmoid_bias_norm_scale_sparse",
     "DEEPSEEK decoder, model kimi-k2-1t (not deepseek3): sigmoid scores + gate bias; top-k AND weights on biased scores; "
     "sigmoid -> divide by sum, x routed_scaling_factor 2.827, then norm_topk_prob divides by the sum again (scale cancels); "
     "n_routing_groups=4/topk_routing_group=2 are ignored (group routing would change the choice); lb_loss + bias_updates; sparse.",
     dict(S8, num_experts=8, num_experts_per_tok=3, decoder_block="deepseek", model_name="kimi-k2-1t",
          routed_score_func="sigmoid", routed_bias=True, routed_bias_update_rate=0.01, routed_scaling_factor=2.827,
          n_routing_groups=4, topk_routing_group=2, norm_topk_prob=True, load_balance_loss_weight=0.01),
     2, 4, 1, "none", 201, group_would_change, None),
    ("f02_deepseek3_groups_norm_dense",
     "deepseek3 group routing (4 groups, top-2) with norm_topk_prob=true after deepseek_scale_weights (scale 2.5 cancels), "
     "dense dropless, lb_loss + bias_updates (rate 0.001).",
     dict(S8, num_experts=8, num_experts_per_tok=2, decoder_block="deepseek", model_name="deepseek3-test",
          routed_score_func="sigmoid", routed_bias=True, routed_bias_update_rate=0.001, routed_scaling_factor=2.5,
          n_routing_groups=4, topk_routing_group=2, norm_topk_prob=True, load_balance_loss_weight=0.01,
          sparse_matmul=False),
     2, 4, 1, "none", 202, group_changes, None),
    ("f03_deepseek3_groups_capacity_drop",
     "deepseek3 group routing (4 groups of 2, top-2 groups) on the dense capacity path, training, capacity_factor=1.0 "
     "(C=ceil(8*2/8)=2 per row): tokens dropped; lb_loss + bias_updates.",
     dict(S8, num_experts=8, num_experts_per_tok=2, decoder_block="deepseek", model_name="deepseek3-test",
          routed_score_func="sigmoid", routed_bias=True, routed_bias_update_rate=0.01, routed_scaling_factor=2.5,
          n_routing_groups=4, topk_routing_group=2, load_balance_loss_weight=0.01, sparse_matmul=False,
          capacity_factor=1.0),
     2, 8, 1, "none", 203, all_(drops, group_changes), None),
    ("f04_deepseek3_model_default_decoder_sparse",
     "model_name deepseek3-test with decoder_block default: weights are pre-bias sigmoid scores at the (biased) top-k, "
     "then softmax over the k values (decoder not DEEPSEEK); pre_bias_logits returned; sparse.",
     dict(S8, num_experts=8, num_experts_per_tok=2, decoder_block="default", model_name="deepseek3-test",
          routed_score_func="sigmoid", routed_bias=True, load_balance_loss_weight=0.0),
     2, 4, 1, "none", 204, None, dict(gate_bias=0.3)),
    ("f05_qwen3_softmax_score_sparse",
     "qwen3 with routed_score_func=softmax: top-k of softmax probs, then softmax over the k probabilities (double softmax), "
     "norm_topk_prob; K=3; lb_loss on softmax(probabilities); sparse.",
     dict(S8, num_experts=8, num_experts_per_tok=3, decoder_block="qwen3", routed_score_func="softmax",
          norm_topk_prob=True, load_balance_loss_weight=0.001),
     2, 4, 1, "none", 205, None, dict(gate=3.0)),
    ("f06_deepseek_decoder_noscore_scale_dense",
     "DEEPSEEK decoder, no score function, model default: raw top-k logits x routed_scaling_factor 2.0 (no softmax, "
     "weights may be negative); dense dropless; lb_loss.",
     dict(S8, num_experts=8, num_experts_per_tok=2, decoder_block="deepseek", model_name="default",
          routed_scaling_factor=2.0, sparse_matmul=False, load_balance_loss_weight=0.01),
     2, 4, 1, "none", 206, None, None),
    # ---------------- capacity
    ("f07_capacity_zero",
     "Dense capacity training with capacity_factor=0.5 and S*K/E=1: capacity int(max(1*0.5, 0.5)) = 0, every "
     "assignment dropped, routed output 0; only lb_loss carries gradient.",
     dict(S8, num_experts=8, num_experts_per_tok=2, sparse_matmul=False, capacity_factor=0.5,
          load_balance_loss_weight=0.01),
     2, 4, 1, "none", 207, None, None),
    ("f08_capacity_075_gelu",
     "Dense capacity training, capacity_factor=0.75: C = int(ceil(16/4)*0.75) = 3; tokens dropped; gelu; decoder default.",
     dict(S8, num_experts=4, num_experts_per_tok=2, decoder_block="default", mlp_activations=["gelu", "linear"],
          sparse_matmul=False, capacity_factor=0.75, load_balance_loss_weight=0.01),
     2, 8, 1, "none", 208, drops, None),
    ("f09_capacity_exact_fill",
     "Dense capacity training, capacity_factor=1.5, S=4,K=2,E=4: C = 3 and some expert receives exactly 3 "
     "assignments in a row (full, nothing dropped).",
     dict(S8, num_experts=4, num_experts_per_tok=2, sparse_matmul=False, capacity_factor=1.5,
          load_balance_loss_weight=0.01),
     2, 4, 1, "none", 209, exact_fill, None),
    ("f10_inference_cp4_bias_updates",
     "Inference dense capacity, cp=4 (S=8 -> 4 sub-sequences of 2), C=1; combine = full softmax probs; no lb_loss in "
     "dense inference (weight>0 set), but bias_updates are still returned (routed_bias, rate 0.01).",
     dict(S8, num_experts=4, num_experts_per_tok=2, sparse_matmul=False, capacity_factor=1.0,
          model_call_mode="inference", ici_context_autoregressive_parallelism=4, routed_bias=True,
          routed_bias_update_rate=0.01, load_balance_loss_weight=0.01),
     2, 8, 1, "none", 210, drops, None),
    ("f11_inference_cf05_cp2_relu",
     "Inference dense capacity, capacity_factor=0.5, cp=2, S=6 (sub-sequence 3): C = int(ceil(6/4)*0.5) = 1; relu.",
     dict(S8, num_experts=4, num_experts_per_tok=2, sparse_matmul=False, capacity_factor=0.5,
          model_call_mode="inference", ici_context_autoregressive_parallelism=2, mlp_activations=["relu", "linear"]),
     2, 6, 1, "none", 211, drops, None),
    ("f12_llama4_dense_capacity_inference_shared",
     "LLAMA4 (K=1) on the dense inference capacity path, cp=2: inputs x sigmoid(top-1 logit), combine weights = full "
     "softmax probs, C=1 per sub-sequence; shared expert.",
     dict(S8, num_experts=4, num_experts_per_tok=1, decoder_block="llama4", sparse_matmul=False, capacity_factor=1.0,
          model_call_mode="inference", ici_context_autoregressive_parallelism=2, shared_experts=1),
     2, 8, 1, "none", 212, drops, None),
    ("f13_gemma4_dense_capacity_inference",
     "GEMMA4 on the dense inference capacity path (cp=1, C=4): per_expert_scale on wo; norm_topk_prob; gelu; combine "
     "uses full softmax probs.",
     dict(S8, num_experts=4, num_experts_per_tok=2, decoder_block="gemma4", mlp_activations=["gelu", "linear"],
          norm_topk_prob=True, sparse_matmul=False, capacity_factor=1.0, model_call_mode="inference"),
     1, 8, 1, "none", 213, drops, None),
    ("f14_gemma4_dense_capacity_training_mlp_bias",
     "GEMMA4 dense capacity training (C=4), mlp_bias (wo_bias not scaled by per_expert_scale), lb_loss; drops.",
     dict(S8, num_experts=4, num_experts_per_tok=2, decoder_block="gemma4", mlp_activations=["gelu", "linear"],
          sparse_matmul=False, capacity_factor=1.0, mlp_bias=True, load_balance_loss_weight=0.001),
     2, 8, 1, "none", 214, drops, None),
    ("f15_gemma4_sparse_mlp_bias_shared_norm",
     "GEMMA4 sparse, mlp_bias, norm_topk_prob, per_expert_scale, shared expert of width mlp_dim=10 (moe_mlp_dim=6); lb.",
     dict(emb_dim=8, moe_mlp_dim=6, mlp_dim=10, num_experts=8, num_experts_per_tok=2, decoder_block="gemma4",
          mlp_activations=["gelu", "linear"], norm_topk_prob=True, mlp_bias=True, shared_experts=1,
          load_balance_loss_weight=0.001),
     2, 4, 1, "none", 215, None, None),
    ("f16_llama4_sparse_norm_topk",
     "LLAMA4 sparse with norm_topk_prob=true: the single top-1 weight is divided by itself (=1), so inputs are scaled by "
     "sigmoid(1) and the gate gets no gradient from the output.",
     dict(S8, num_experts=4, num_experts_per_tok=1, decoder_block="llama4", norm_topk_prob=True),
     2, 4, 1, "none", 216, None, None),
    ("f17_gpt_oss_dense_dropless",
     "GPT_OSS dense dropless: clamps hit (limit 0.7), mlp_bias, gate bias with updates (rate 0.01), lb_loss.",
     dict(S8, num_experts=4, num_experts_per_tok=2, decoder_block="gpt_oss", mlp_activations=["sigmoid", "linear"],
          mlp_activations_limit=0.7, mlp_bias=True, routed_bias=True, routed_bias_update_rate=0.01,
          sparse_matmul=False, load_balance_loss_weight=0.01),
     2, 4, 1, "none", 217, clamps, dict(wi=0.7)),
    ("f18_gpt_oss_inference_capacity",
     "GPT_OSS on the dense inference capacity path (no mlp_bias), cp=2, C=2; clamps hit; drops.",
     dict(S8, num_experts=4, num_experts_per_tok=2, decoder_block="gpt_oss", mlp_activations=["sigmoid", "linear"],
          mlp_activations_limit=0.8, sparse_matmul=False, capacity_factor=1.0, model_call_mode="inference",
          ici_context_autoregressive_parallelism=2),
     2, 8, 1, "none", 218, all_(drops, clamps), dict(wi=0.7)),
    ("f19_gpt_oss_silu_sparse_shared",
     "GPT_OSS activation with silu instead of sigmoid (h0c*silu(1.702*h0c)*(h1c+1)), limit 1.0, mlp_bias, sparse, "
     "shared expert (silu*linear MlpBlock).",
     dict(S8, num_experts=8, num_experts_per_tok=2, decoder_block="gpt_oss", mlp_activations=["silu", "linear"],
          mlp_activations_limit=1.0, mlp_bias=True, shared_experts=1),
     2, 4, 1, "none", 219, clamps, dict(wi=0.8)),
    # ---------------- MLP / activations
    ("f20_shared_mlp_bias_gelu_sparse",
     "Routed mlp_bias + shared experts (shared MlpBlock has no bias), gelu, shared_experts=2, sparse, lb.",
     dict(emb_dim=8, moe_mlp_dim=6, mlp_dim=8, num_experts=8, num_experts_per_tok=2,
          mlp_activations=["gelu", "linear"], mlp_bias=True, shared_experts=2, load_balance_loss_weight=0.01),
     2, 4, 1, "none", 220, None, None),
    ("f21_shared_relu_gelu_acts_dense",
     "mlp_activations=[relu, gelu]: routed experts use only the first (relu(h0)*h1); the shared MlpBlock uses both "
     "(relu(x W0) * gelu(x W1)); dense dropless.",
     dict(S8, num_experts=4, num_experts_per_tok=2, mlp_activations=["relu", "gelu"], shared_experts=1,
          sparse_matmul=False),
     2, 4, 1, "none", 221, None, None),
    ("f22_shared_single_act_sparse",
     "mlp_activations=[silu] (one activation): routed silu(h0)*h1 with wi_0/wi_1; shared MlpBlock has a single 'wi' "
     "kernel (shared_wi): silu(x Wi) Wo; sparse; lb.",
     dict(S8, num_experts=8, num_experts_per_tok=2, mlp_activations=["silu"], shared_experts=1,
          load_balance_loss_weight=0.01),
     2, 4, 1, "none", 222, None, None),
    ("f23_relu_sparse_bias_lb_updates",
     "sigmoid score + gate bias (non-DeepSeek) with norm_topk_prob, lb_loss and bias_updates together; relu + mlp_bias; "
     "sparse.",
     dict(S8, num_experts=8, num_experts_per_tok=2, decoder_block="default", routed_score_func="sigmoid",
          routed_bias=True, routed_bias_update_rate=0.01, norm_topk_prob=True, load_balance_loss_weight=0.01,
          mlp_activations=["relu", "linear"], mlp_bias=True),
     2, 4, 1, "none", 223, None, dict(gate=2.0)),
    # ---------------- expert parallelism
    ("f24_ep2_bs_deepseek3_groups",
     "EP N=2 batch sharded (B=4 -> 2 rows per shard), deepseek3 group routing, lb_loss/bias_updates per shard.",
     dict(S8, num_experts=8, num_experts_per_tok=2, decoder_block="deepseek", model_name="deepseek3-test",
          routed_score_func="sigmoid", routed_bias=True, routed_bias_update_rate=0.01, routed_scaling_factor=2.5,
          n_routing_groups=4, topk_routing_group=2, load_balance_loss_weight=0.01),
     4, 2, 2, "batch_sharded", 224, group_changes, None),
    ("f25_ep4_ring_llama4_shared",
     "Ring of experts N=4 (E=8, 2 local), LLAMA4 top-1 with shared expert; lb_loss on the full batch.",
     dict(S8, num_experts=8, num_experts_per_tok=1, decoder_block="llama4", shared_experts=1,
          use_ring_of_experts=True, load_balance_loss_weight=0.01),
     4, 2, 4, "ring_of_experts", 225, None, None),
    ("f26_ep2_replicated_gemma4_bias",
     "EP N=2, batch 1 (replicated): GEMMA4 with per_expert_scale, gate bias + updates, lb_loss.",
     dict(S8, num_experts=8, num_experts_per_tok=2, decoder_block="gemma4", mlp_activations=["gelu", "linear"],
          routed_bias=True, routed_bias_update_rate=0.01, load_balance_loss_weight=0.01),
     1, 8, 2, "batch_replicated", 226, None, None),
    ("f27_ep4_bs_one_local_expert",
     "EP N=4 batch sharded with E=4 (one local expert per shard), K=2: worst-case buffer factor min(4, E/K=2) = 2; "
     "mlp_bias; lb per shard.",
     dict(S8, num_experts=4, num_experts_per_tok=2, mlp_bias=True, load_balance_loss_weight=0.01),
     4, 2, 4, "batch_sharded", 227, None, None),
    ("f28_ep2_ring_gpt_oss_bias_updates",
     "Ring of experts N=2: GPT_OSS (clamps hit), mlp_bias, gate bias + updates, lb_loss (full batch on every shard).",
     dict(S8, num_experts=8, num_experts_per_tok=2, decoder_block="gpt_oss", mlp_activations=["sigmoid", "linear"],
          mlp_activations_limit=0.7, mlp_bias=True, routed_bias=True, routed_bias_update_rate=0.01,
          use_ring_of_experts=True, load_balance_loss_weight=0.01),
     2, 4, 2, "ring_of_experts", 228, clamps, dict(wi=0.7)),
    ("f29_ep2_bs_ragged_factor_1p5_deepseek2",
     "EP N=2 batch sharded, ragged_buffer_factor=1.5 (buffer int(8*1.5)=12 rows, no overflow); DEEPSEEK decoder with "
     "sigmoid score (non-deepseek3): divide by sum, x 1.5.",
     dict(S8, num_experts=8, num_experts_per_tok=2, decoder_block="deepseek", model_name="deepseek2-16b",
          routed_score_func="sigmoid", routed_scaling_factor=1.5, ragged_buffer_factor=1.5),
     2, 4, 2, "batch_sharded", 229, None, None),
    ("f30_ep2_bs_random_routing_dups",
     "EP N=2 batch sharded with random routing (injected draw with duplicated experts): raw gate values as weights; lb.",
     dict(S8, num_experts=4, num_experts_per_tok=2, use_random_routing=True, load_balance_loss_weight=0.01),
     2, 4, 2, "batch_sharded", 230, has_dup, None),
    ("f31_sparse_inference_capacity_ignored",
     "Sparse path with model_call_mode=inference and capacity_factor=0.5: the sparse path ignores capacity (dropless) "
     "and still computes lb_loss.",
     dict(S8, num_experts=8, num_experts_per_tok=2, capacity_factor=0.5, model_call_mode="inference",
          load_balance_loss_weight=0.01),
     2, 4, 1, "none", 231, None, None),
    ("f32_ep2_dense_capacity",
     "expert_parallelism=2 on the dense capacity path (no shard_map in dense_matmul: the expert weights are "
     "all-gathered), so every value, lb_loss included, is the single-device value; no ep_* side outputs.",
     dict(S8, num_experts=4, num_experts_per_tok=2, sparse_matmul=False, capacity_factor=1.0,
          load_balance_loss_weight=0.01),
     2, 8, 2, "batch_sharded", 232, drops, None),
    # ---------------- random routing
    ("f33_random_dense_dropless_dups",
     "Random routing on the dense dropless path with duplicated experts: reshape_and_update_weights SETS the weight once "
     "(a duplicate counts once, unlike the sparse path); decoder deepseek + norm_topk_prob + scale ignored (early return).",
     dict(S8, num_experts=4, num_experts_per_tok=2, use_random_routing=True, decoder_block="deepseek",
          routed_scaling_factor=2.0, norm_topk_prob=True, sparse_matmul=False, load_balance_loss_weight=0.01),
     2, 4, 1, "none", 233, has_dup, None),
    ("f34_random_dense_capacity_dups",
     "Random routing on the dense capacity path (training, C=4) with a duplicated expert kept twice: generate_masks "
     "doubles the weight and sums the two positions times 2, so the one-hot position overflows and that token's "
     "contribution to the expert vanishes (port as written); other tokens dropped.",
     dict(S8, num_experts=4, num_experts_per_tok=2, use_random_routing=True, sparse_matmul=False,
          capacity_factor=1.0, load_balance_loss_weight=0.01),
     2, 8, 1, "none", 234, dup_both_kept, None),
    # ---------------- shapes
    ("f35_k_equals_E_sparse",
     "num_experts_per_tok = num_experts = 4: every expert selected, softmax over all, sparse, lb.",
     dict(S8, num_experts=4, num_experts_per_tok=4, load_balance_loss_weight=0.01),
     2, 4, 1, "none", 235, None, dict(gate=1.5)),
    ("f36_k1_dense_capacity",
     "K=1 (softmax of one value = 1) on the dense capacity path, C=2; drops; the gate only gets gradient from lb_loss.",
     dict(S8, num_experts=4, num_experts_per_tok=1, sparse_matmul=False, capacity_factor=1.0,
          load_balance_loss_weight=0.01),
     2, 8, 1, "none", 236, drops, None),
    ("f37_b1_s1_shared_sparse",
     "batch 1, seq 1: sparse with shared expert and lb_loss.",
     dict(S8, num_experts=8, num_experts_per_tok=2, shared_experts=1, load_balance_loss_weight=0.01),
     1, 1, 1, "none", 237, None, None),
    ("f38_gate_inputs_dense",
     "Separate gate_inputs (routing from gate_inputs, experts on x): dense dropless, lb_loss; grad_gate_inputs.",
     dict(S8, num_experts=8, num_experts_per_tok=2, sparse_matmul=False, load_balance_loss_weight=0.01,
          _gate_inputs=True),
     2, 4, 1, "none", 238, None, None),
    ("f39_gate_inputs_deepseek3_sparse_shared",
     "Separate gate_inputs with deepseek3 routing (bias, updates), sparse, shared expert (shared MLP on x).",
     dict(S8, num_experts=8, num_experts_per_tok=2, decoder_block="deepseek", model_name="deepseek3-test",
          routed_score_func="sigmoid", routed_bias=True, routed_bias_update_rate=0.01, routed_scaling_factor=2.5,
          shared_experts=1, _gate_inputs=True),
     2, 4, 1, "none", 239, None, None),
    ("f40_decode_b1_s1_inference_capacity",
     "Decode shape B=1,S=1 on the dense inference capacity path with cp=2 (1 % 2 != 0 -> cp=1), C=1.",
     dict(S8, num_experts=4, num_experts_per_tok=2, sparse_matmul=False, capacity_factor=1.0,
          model_call_mode="inference", ici_context_autoregressive_parallelism=2),
     1, 1, 1, "none", 240, None, None),
]

if __name__ == "__main__":
    only = sys.argv[1:]
    for (name, desc, over, B, S, ep, path, seed, want, scales) in SPECS:
        if only and not any(name.startswith(o) for o in only):
            continue
        t0 = time.time()
        try:
            c = make_case(name, desc, over, B, S, ep, path, seed, want, scales)
            g = c["generation"]
            print(f"{name}: attempt {g['attempt']} gap {g['min_topk_gap']:.2e} kink {g['min_kink_distance']:.2e} "
                  f"dropped {g['dropped_assignments']} clamps {g['clamped_w0']}/{g['clamped_w1']} "
                  f"({time.time()-t0:.1f}s)", flush=True)
        except Exception as e:
            print(f"{name}: FAILED {type(e).__name__}: {e}", flush=True)


def tie_fix(T, rng):
    # experts 1 and 3: identical gate columns and a large equal bias -> exact tie, both always selected
    T["gate_kernel"][:, 3] = T["gate_kernel"][:, 1]
    T["gate_bias"][:] = np.float32(0.0)
    T["gate_bias"][1] = np.float32(8.0)
    T["gate_bias"][3] = np.float32(8.0)


MORE = [
    ("f41_exact_tie_lower_index_first",
     "Exact tie (experts 1 and 3 have identical gate columns and bias +8): both always selected; top_k_indices list the "
     "lower index first (jax.lax.top_k tie rule); weights 0.5/0.5 after the top-k softmax; sparse.",
     dict(S8, num_experts=4, num_experts_per_tok=2, routed_bias=True),
     2, 4, 1, "none", 241, None, None, tie_fix),
    ("f42_odd_dims_sparse_mlp_bias",
     "Odd sizes D=5, H=7, E=6, K=3, B=3, S=5: sparse, silu, mlp_bias, lb.",
     dict(emb_dim=5, moe_mlp_dim=7, mlp_dim=7, num_experts=6, num_experts_per_tok=3, mlp_bias=True,
          load_balance_loss_weight=0.01),
     3, 5, 1, "none", 242, None, None, None),
    ("f43_odd_dims_dense_capacity",
     "Odd sizes D=7, H=5, E=6, K=2, B=3, S=5, dense capacity training cf=1.25: C = int(ceil(10/6)*1.25) = 2; drops.",
     dict(emb_dim=7, moe_mlp_dim=5, mlp_dim=5, num_experts=6, num_experts_per_tok=2, sparse_matmul=False,
          capacity_factor=1.25, load_balance_loss_weight=0.01),
     3, 5, 1, "none", 243, drops, None, None),
    ("f44_larger_sparse_gelu",
     "Larger: D=24, H=40, E=16, K=4, B=2, S=16 (128 sorted rows), gelu, lb; sparse.",
     dict(emb_dim=24, moe_mlp_dim=40, mlp_dim=40, num_experts=16, num_experts_per_tok=4,
          mlp_activations=["gelu", "linear"], load_balance_loss_weight=0.01),
     2, 16, 1, "none", 244, None, dict(gate=0.5, wi=0.2, wo=0.15), None),
    ("f45_many_experts_deepseek3_groups",
     "E=64, K=6, deepseek3 group routing 8 groups / top-3, sigmoid + bias + updates, scale 2.5; sparse; lb.",
     dict(emb_dim=16, moe_mlp_dim=4, mlp_dim=4, num_experts=64, num_experts_per_tok=6, decoder_block="deepseek",
          model_name="deepseek3-test", routed_score_func="sigmoid", routed_bias=True, routed_bias_update_rate=0.001,
          routed_scaling_factor=2.5, n_routing_groups=8, topk_routing_group=3, load_balance_loss_weight=0.001),
     2, 3, 1, "none", 245, group_changes, dict(gate=0.6, gate_bias=0.05), None),
    ("f46_ep3_bs_E12",
     "EP N=3 batch sharded (B=3), E=12 (4 local), K=3; bias_updates per shard; lb per shard.",
     dict(S8, num_experts=12, num_experts_per_tok=3, routed_bias=True, routed_bias_update_rate=0.01,
          load_balance_loss_weight=0.01),
     3, 4, 3, "batch_sharded", 246, None, None, None),
    ("f47_dense_inference_dropless",
     "Dense dropless in inference mode: no lb_loss (weight>0 set) but bias_updates returned; shared expert.",
     dict(S8, num_experts=8, num_experts_per_tok=2, sparse_matmul=False, model_call_mode="inference",
          routed_bias=True, routed_bias_update_rate=0.01, load_balance_loss_weight=0.01, shared_experts=1),
     2, 4, 1, "none", 247, None, None, None),
    ("f48_training_capacity_ignores_cp",
     "Dense capacity TRAINING with ici_context_autoregressive_parallelism=2: generate_masks ignores cp (capacity over "
     "the whole row: C = ceil(8*2/4)*1 = 4, not 2 per half).",
     dict(S8, num_experts=4, num_experts_per_tok=2, sparse_matmul=False, capacity_factor=1.0,
          ici_context_autoregressive_parallelism=2),
     2, 8, 1, "none", 248, drops, None, None),
    ("f49_single_relu_act_dense_capacity",
     "mlp_activations=[relu] (single): routed relu(h0)*h1 still uses wi_0 and wi_1; dense capacity training; drops.",
     dict(S8, num_experts=4, num_experts_per_tok=2, mlp_activations=["relu"], sparse_matmul=False,
          capacity_factor=1.0, load_balance_loss_weight=0.01),
     2, 8, 1, "none", 249, drops, None, None),
    ("f50_sigmoid_mlp_act_dense",
     "mlp_activations=[sigmoid, linear] on a non-GPT decoder (plain sigmoid(h0)*h1); dense dropless.",
     dict(S8, num_experts=8, num_experts_per_tok=2, mlp_activations=["sigmoid", "linear"], sparse_matmul=False),
     2, 4, 1, "none", 250, None, None, None),
    ("f51_single_expert",
     "num_experts=1, K=1: every token to expert 0 with weight 1; lb_loss = weight exactly; sparse.",
     dict(S8, num_experts=1, num_experts_per_tok=1, load_balance_loss_weight=0.01),
     2, 4, 1, "none", 251, None, None, None),
    ("f52_ep2_bs_llama4",
     "EP N=2 batch sharded with LLAMA4 top-1 (inputs scaled by sigmoid before the all-to-all).",
     dict(S8, num_experts=4, num_experts_per_tok=1, decoder_block="llama4", load_balance_loss_weight=0.01),
     2, 4, 2, "batch_sharded", 252, None, None, None),
    ("f53_inference_capacity_zero_cp4",
     "Inference capacity with cp=4, S=4 (sub-sequence 1) and capacity_factor 0.5: C = int(max(ceil(2/4)*0.5, 0.5)) = 0;"
     " everything dropped; shared expert keeps the output nonzero.",
     dict(S8, num_experts=4, num_experts_per_tok=2, sparse_matmul=False, capacity_factor=0.5,
          model_call_mode="inference", ici_context_autoregressive_parallelism=4, shared_experts=1),
     1, 4, 1, "none", 253, None, None, None),
]

if __name__ == "__main__":
    only = sys.argv[1:]
    for (name, desc, over, B, S, ep, path, seed, want, scales, fix) in MORE:
        if not only or not any(name.startswith(o) for o in only):
            continue
        t0 = time.time()
        try:
            c = make_case(name, desc, over, B, S, ep, path, seed, want, scales, fix,
                          ignore_zero_gap=name.startswith("f41"))
            g = c["generation"]
            print(f"{name}: attempt {g['attempt']} gap {g['min_topk_gap']:.2e} kink {g['min_kink_distance']:.2e} "
                  f"dropped {g['dropped_assignments']} ({time.time()-t0:.1f}s)", flush=True)
        except Exception as e:
            print(f"{name}: FAILED {type(e).__name__}: {e}", flush=True)

EXTRA = [
    ("f54_tanh_softplus_acts_shared_sparse",
     "mlp_activations=[tanh, softplus] (flax.linen names): routed tanh(h0)*h1; shared tanh(x W0)*softplus(x W1); sparse.",
     dict(S8, num_experts=8, num_experts_per_tok=2, mlp_activations=["tanh", "softplus"], shared_experts=1),
     2, 4, 1, "none", 254, None, None, None),
    ("f55_elu_leaky_relu_acts_shared_dense",
     "mlp_activations=[elu, leaky_relu]: routed elu(h0)*h1; shared elu(x W0)*leaky_relu(x W1) (slope 0.01); dense.",
     dict(S8, num_experts=4, num_experts_per_tok=2, mlp_activations=["elu", "leaky_relu"], shared_experts=1,
          sparse_matmul=False),
     2, 4, 1, "none", 255, None, None, None),
    ("f56_sqrtsoftplus_score_deepseek3",
     "routed_score_func=sqrtsoftplus (SEMANTICS 2.1: HEAD addition) with a deepseek3 model: selection on "
     "sqrt(softplus(logits))+bias, weights pre-bias, scale 1.5 (no renormalisation: not sigmoid); swish act; sparse.",
     dict(S8, num_experts=8, num_experts_per_tok=2, decoder_block="deepseek", model_name="deepseek3-test",
          routed_score_func="sqrtsoftplus", routed_bias=True, routed_scaling_factor=1.5,
          mlp_activations=["swish", "linear"]),
     2, 4, 1, "none", 256, None, None, None),
    ("f57_ep8_bs_one_expert_each",
     "EP N=8 batch sharded, E=8 (one local expert per shard), B=8, S=1, K=2; lb per shard; bias updates per shard.",
     dict(S8, num_experts=8, num_experts_per_tok=2, routed_bias=True, routed_bias_update_rate=0.01,
          load_balance_loss_weight=0.01),
     8, 1, 8, "batch_sharded", 257, None, None, None),
]

# the dense path under expert parallelism: dense_matmul has no shard_map, so every value is the single-device one
DENSE_EP = [
    ("f58_ep2_dense_dropless_bias_updates",
     "EP N=2 on the dense dropless path: sigmoid score, gate bias with loss-free updates, lb_loss (whole batch).",
     dict(S8, num_experts=4, num_experts_per_tok=2, sparse_matmul=False, routed_score_func="sigmoid",
          routed_bias=True, routed_bias_update_rate=0.01, load_balance_loss_weight=0.01),
     2, 4, 2, "batch_sharded", 258, None, None, None),
    ("f59_ep2_dense_replicated_b1",
     "EP N=2 on the dense capacity path with a one-row batch (batch_replicated): capacity per row, lb_loss.",
     dict(S8, num_experts=4, num_experts_per_tok=2, sparse_matmul=False, capacity_factor=1.0,
          load_balance_loss_weight=0.01),
     1, 8, 2, "batch_replicated", 259, drops, None, None),
    ("f60_ep4_dense_mlp_bias_shared",
     "EP N=4 on the dense dropless path: mlp_bias, a shared expert, lb_loss; B=4 (one row per shard).",
     dict(S8, num_experts=8, num_experts_per_tok=2, sparse_matmul=False, mlp_bias=True, shared_experts=1,
          load_balance_loss_weight=0.01),
     4, 2, 4, "batch_sharded", 260, None, None, None),
    ("f61_ep2_dense_random_routing_capacity",
     "EP N=2 on the dense capacity path with random routing (injected draw over the whole batch), lb_loss.",
     dict(S8, num_experts=4, num_experts_per_tok=2, sparse_matmul=False, capacity_factor=1.0,
          use_random_routing=True, load_balance_loss_weight=0.01),
     2, 8, 2, "batch_sharded", 261, drops, None, None),
    ("f62_ep2_dense_inference_capacity_cp2",
     "EP N=2 on the dense inference capacity path with cp=2 sub-groups (no lb_loss in inference).",
     dict(S8, num_experts=4, num_experts_per_tok=2, sparse_matmul=False, capacity_factor=1.0,
          model_call_mode="inference", ici_context_autoregressive_parallelism=2),
     2, 8, 2, "batch_sharded", 262, drops, None, None),
]

if __name__ == "__main__":
    only = sys.argv[1:]
    for (name, desc, over, B, S, ep, path, seed, want, scales, fix) in EXTRA + DENSE_EP:
        if not only or not any(name.startswith(o) for o in only):
            continue
        c = make_case(name, desc, over, B, S, ep, path, seed, want, scales, fix)
        g = c["generation"]
        print(f"{name}: attempt {g['attempt']} gap {g['min_topk_gap']:.2e} kink {g['min_kink_distance']:.2e}", flush=True)
