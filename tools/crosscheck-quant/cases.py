# cases.py [name prefix...]: writes the cross-check cases (all, or those whose names start with a prefix given)
import sys
import numpy as np
from gen import build_case, mkcfg
import ref

ONLY = set(sys.argv[1:])


def shp(B, S, D, H, E, K):
    return {"batch": B, "seq": S, "emb_dim": D, "moe_mlp_dim": H, "num_experts": E, "num_experts_per_tok": K}


def dims(s, **kw):
    d = dict(emb_dim=s["emb_dim"], moe_mlp_dim=s["moe_mlp_dim"], mlp_dim=kw.pop("mlp_dim", s["moe_mlp_dim"]),
             num_experts=s["num_experts"], num_experts_per_tok=s["num_experts_per_tok"])
    d.update(kw)
    return mkcfg(**d)


def want(name):
    return not ONLY or any(name.startswith(o) for o in ONLY)


def pos_absmax(axis_k):
    """post-draw hook: make the abs-max element of every slice over axis_k positive (negate the slice)."""
    def f(T, rng):
        for n in ("wi_0", "wi_1", "wo"):
            W = T[n]
            am_idx = np.argmax(np.abs(W), axis=axis_k, )
            val = np.take_along_axis(W, np.expand_dims(am_idx, axis_k), axis_k)
            T[n] = W * np.sign(val)
    return f


def half_points(bits, x_pow, w_pow, names=("wi_0", "wi_1", "wo"), x=True, gate=True, neg_extreme=True):
    """Design exact half-points on power-of-two scales (rows of x over D; weight slices over the contracting axis)."""
    Q = 2.0 ** (bits - 1) - 0.5
    halfs = [2, -4, 0, -1, 126, -127, 5, -6] if bits == 8 else [2, -4, 0, -1, 6, -7, 1, -2]

    def design(v, s, rng):  # v: 1-D slice
        n = v.size
        amax = Q * s
        v[:] = rng.uniform(-0.9, 0.9, n) * amax
        j = rng.integers(n)
        sign = -1.0 if (neg_extreme and rng.random() < 0.6) else 1.0
        v[j] = sign * amax
        others = [i for i in range(n) if i != j]
        rng.shuffle(others)
        for i, h in zip(others[:3], rng.choice(halfs, 3, replace=False)):
            v[i] = (h + 0.5) * s

    def f(T, rng):
        if x:
            X = T["x"]
            for b in range(X.shape[0]):
                for s_ in range(X.shape[1]):
                    design(X[b, s_], 2.0 ** x_pow, rng)
        if gate:
            G = T["gate_kernel"]
            for e in range(G.shape[1]):
                col = G[:, e].copy()
                design(col, 2.0 ** (w_pow + 3), rng)
                G[:, e] = col
        for n in names:
            W = T[n]
            for e in range(W.shape[0]):
                for c in range(W.shape[2]):
                    col = W[e, :, c].copy()
                    design(col, 2.0 ** w_pow, rng)
                    W[e, :, c] = col
    return f


def dropped(out, st, T, case):
    return st.dropped > 0


def clamped(out, st, T, case):
    return st.clamped > 0


def exact(out, st, T, case):
    return st.exact_half > 0


def group_changes(out, st, T, case):
    g = out["gate_logits"]
    k = case["config"]["num_experts_per_tok"]
    plain = np.sort(np.argsort(-g, axis=-1, kind="stable")[..., :k], -1)
    return not np.array_equal(plain, np.sort(out["top_k_indices"], -1))


def ep_disc(out, st, T, case):
    ref.VARIANT.add("ep_global_scale")
    o2, _ = ref.forward(case)
    ref.VARIANT.clear()
    tol = 1e-4 * max(1.0, np.abs(out["output"]).max())
    return np.abs(o2["output"] - out["output"]).max() > 5 * tol


def both(*fs):
    return lambda *a: all(f(*a) for f in fs)


I8 = dict(quantization="int8")
MP8 = dict(quantization="intmp", quant_cfg={"__default__": {"w_bits": 8}})
MP4 = dict(quantization="intmp", quant_cfg={"__default__": {"w_bits": 4}})

C = []  # (name, desc, cfg, shapes, seed, opts, ep, ep_path, need, variants)

s = shp(2, 4, 8, 12, 8, 2)
C.append(("qj01_int8_sparse_tokamax_gmm",
          "int8, sparse_matmul with use_tokamax_gmm=true, megablox=false: quantized tokamax gmm (qwix: rows per row, "
          "weights one scale per output column shared by all experts); H=12.",
          dims(s, sparse_matmul=True, megablox=False, use_tokamax_gmm=True, **I8), s, 9601, {"gscale": 0.6}, 1,
          "none", None, ["per_expert_col"]))

s = shp(2, 4, 8, 8, 16, 4)
C.append(("qj02_int8_dense_deepseek3_sigmoid_groups_shared",
          "int8 dense dropless, DeepSeek-V3 routing: sigmoid scores, gate bias (selection only), 4 groups / top 2, "
          "weights from pre-bias scores normalised and x2.5, bias updates, lb_loss, one shared expert (quantized MlpBlock).",
          dims(s, decoder_block="deepseek", model_name="deepseek3-test", routed_score_func="sigmoid", routed_bias=True,
               routed_bias_update_rate=0.001, routed_scaling_factor=2.5, n_routing_groups=4, topk_routing_group=2,
               load_balance_loss_weight=0.001, shared_experts=1, **I8), s, 9602, {"gscale": 0.7, "bscale": 0.1}, 1,
          "none", group_changes, []))

s = shp(2, 4, 8, 8, 8, 2)
C.append(("qj03_int8_dense_sigmoid_gate_bias",
          "int8 dense dropless, decoder default: sigmoid score, gate bias, top-k + softmax on biased scores, bias updates.",
          dims(s, decoder_block="default", routed_score_func="sigmoid", routed_bias=True, routed_bias_update_rate=0.01,
               **I8), s, 9603, {"gscale": 0.6, "bscale": 0.2}, 1, "none", None, []))

s = shp(2, 4, 8, 6, 8, 2)
C.append(("qj04_int8_sparse_megablox_deepseek2_shared2",
          "int8 sparse megablox, DeepSeek-V2 style (softmax score, x1.5, no renorm), two shared experts (Hs=12) "
          "quantized as an MlpBlock (x per token, weights per column).",
          dims(s, sparse_matmul=True, decoder_block="deepseek", model_name="deepseek2-16b", routed_score_func="softmax",
               routed_scaling_factor=1.5, load_balance_loss_weight=0.0, shared_experts=2, **I8), s, 9604,
          {"gscale": 0.8}, 1, "none", None, []))

s = shp(2, 8, 8, 8, 4, 2)
C.append(("qj05_int8_dense_capacity_inference_cp1",
          "int8 dense capacity (cf=1) in model_call_mode=inference: dispatch/combine einsums plain (not quantized), "
          "expert einsums quantized per (e,b,n,c) row; combine with the full softmax; no lb_loss.",
          dims(s, capacity_factor=1.0, model_call_mode="inference", **I8), s, 9605, {"gscale": 0.6}, 1, "none",
          dropped, ["inference_quant_dispatch"]))

C.append(("qj06_int8_dense_capacity_inference_cp2",
          "int8 dense capacity (cf=1) in inference with context_autoregressive=2 (two sub-sequences per row).",
          dims(s, capacity_factor=1.0, model_call_mode="inference", ici_context_autoregressive_parallelism=2,
               load_balance_loss_weight=0.0, **I8), s, 9606, {"gscale": 0.6}, 1, "none", dropped,
          ["inference_quant_dispatch"]))

s = shp(2, 4, 8, 8, 8, 2)
C.append(("qj07_intmp_w4_dense_shared",
          "intmp w_bits=4 weight-only (AQT, Q=7.5, clip +-7) on the dense dropless path: gate, expert kernels per "
          "(expert, column), shared expert kernels per column; activations float.",
          dims(s, shared_experts=1, **MP4), s, 9607, {"gscale": 0.6}, 1, "none", None, []))

C.append(("qj08_intmp_w8_sparse_megablox",
          "intmp w_bits=8 on the sparse megablox path (documented extension): weight-only per (expert, column), "
          "activations float. Every weight slice's abs-max element is positive so AQT/qwix readings agree.",
          dims(s, sparse_matmul=True, **MP8), s, 9608, {"gscale": 0.6, "post": pos_absmax(1)}, 1, "none", None,
          ["intmp_sparse_col_shared"]))

C.append(("qj09_intmp_w4_sparse_megablox",
          "intmp w_bits=4 on the sparse megablox path: weight-only per (expert, column), activations float; "
          "positive abs-max per slice.",
          dims(s, sparse_matmul=True, **MP4), s, 9609, {"gscale": 0.6, "post": pos_absmax(1)}, 1, "none", None,
          ["intmp_sparse_col_shared"]))

C.append(("qj10_int8_sparse_gpt_oss_mlp_bias",
          "int8 sparse megablox, GPT-OSS activation (limit 1.2, clamps hit), mlp_bias added after the quantized gmm, "
          "gate bias (no updates).",
          dims(s, sparse_matmul=True, decoder_block="gpt_oss", mlp_activations=["sigmoid", "linear"],
               mlp_activations_limit=1.2, mlp_bias=True, routed_bias=True, load_balance_loss_weight=0.0, **I8), s,
          9610, {"gscale": 0.6, "wiscale": 1.3}, 1, "none", clamped, []))

s4 = shp(2, 4, 8, 8, 4, 2)
C.append(("qj11_int8_dense_relu_mlp_bias",
          "int8 dense dropless with relu and mlp_bias (bias added after the quantized einsums).",
          dims(s4, mlp_activations=["relu", "linear"], mlp_bias=True, load_balance_loss_weight=0.0, **I8), s4, 9611,
          {"gscale": 0.6}, 1, "none", None, []))

s = shp(2, 4, 8, 6, 8, 2)
C.append(("qj12_int8_dense_gemma4_gelu_shared",
          "int8 dense dropless, Gemma4: gelu, softmax-over-all weights, norm_topk_prob, per_expert_scale folded into wo "
          "before quantization, shared expert sized by mlp_dim=10.",
          dims(s, mlp_dim=10, decoder_block="gemma4", mlp_activations=["gelu", "linear"], norm_topk_prob=True,
               load_balance_loss_weight=0.001, shared_experts=1, **I8), s, 9612, {"gscale": 0.6}, 1, "none", None,
          []))

s = shp(2, 4, 8, 8, 8, 2)
C.append(("qj13_int8_sparse_gemma4",
          "int8 sparse megablox, Gemma4: per_expert_scale multiplies wo before the qwix column scale (shared by all "
          "experts) is taken.",
          dims(s, sparse_matmul=True, decoder_block="gemma4", mlp_activations=["gelu", "linear"],
               load_balance_loss_weight=0.001, **I8), s, 9613, {"gscale": 0.6}, 1, "none", None, []))

s = shp(2, 4, 8, 8, 4, 1)
C.append(("qj14_int8_sparse_llama4_shared",
          "int8 sparse megablox, Llama4: k=1, inputs scaled by sigmoid(top-1 logit) before the quantized gmm, "
          "combine weight 1, one shared expert.",
          dims(s, sparse_matmul=True, decoder_block="llama4", load_balance_loss_weight=0.0, shared_experts=1, **I8), s,
          9614, {"gscale": 0.6}, 1, "none", None, []))

s = shp(2, 4, 8, 8, 8, 1)
C.append(("qj15_int8_dense_llama4",
          "int8 dense dropless, Llama4 (k=1, sigmoid pre-scaling of the inputs).",
          dims(s, decoder_block="llama4", load_balance_loss_weight=0.0, **I8), s, 9615, {"gscale": 0.6}, 1, "none",
          None, []))

s = shp(2, 4, 8, 8, 8, 2)
C.append(("qj16_int8_sparse_ep2_batch_sharded",
          "int8 sparse megablox with expert parallelism 2, batch sharded: the qwix weight column scales are taken "
          "over each shard's 4 local experts; lb_loss / bias_updates are shard 0's.",
          dims(s, sparse_matmul=True, routed_bias=True, routed_bias_update_rate=0.01, **I8), s, 9616,
          {"gscale": 0.6, "bscale": 0.2}, 2, "batch_sharded", ep_disc, ["ep_global_scale"]))

s = shp(4, 2, 8, 8, 8, 2)
C.append(("qj17_int8_sparse_ep4_batch_sharded_mlp_bias",
          "int8 sparse megablox, EP=4 batch sharded (2 local experts per shard -> per-shard column scales), mlp_bias.",
          dims(s, sparse_matmul=True, mlp_bias=True, load_balance_loss_weight=0.0, **I8), s, 9617, {"gscale": 0.6}, 4,
          "batch_sharded", ep_disc, ["ep_global_scale"]))

s = shp(1, 8, 8, 8, 8, 2)
C.append(("qj18_int8_sparse_ep2_replicated",
          "int8 sparse megablox, EP=2 with the batch replicated (batch 1): per-shard local-expert column scales.",
          dims(s, sparse_matmul=True, **I8), s, 9618, {"gscale": 0.6}, 2, "batch_replicated", ep_disc,
          ["ep_global_scale"]))

s = shp(2, 4, 8, 8, 8, 2)
C.append(("qj19_int8_sparse_ring_ep2",
          "int8 sparse megablox, ring of experts EP=2: per-shard local-expert column scales; lb_loss on the full batch.",
          dims(s, sparse_matmul=True, use_ring_of_experts=True, **I8), s, 9619, {"gscale": 0.6}, 2, "ring_of_experts",
          ep_disc, ["ep_global_scale"]))

C.append(("qj20_int8_dense_local_shard_count",
          "int8 dense dropless with quantization_local_shard_count=1 (affects only the backward; forward unchanged).",
          dims(s, quantization_local_shard_count=1, **I8), s, 9620, {"gscale": 0.6}, 1, "none", None, []))

C.append(("qj21_int8_sparse_local_shard_count",
          "int8 sparse megablox with quantization_local_shard_count=4 (forward unchanged).",
          dims(s, sparse_matmul=True, quantization_local_shard_count=4, **I8), s, 9621, {"gscale": 0.6}, 1, "none",
          None, []))

C.append(("qj22_int8_dense_half_points",
          "int8 dense (AQT): x rows (scale 2^-6), gate and expert weight columns (2^-4 / 2^-7) designed with exact "
          "half-points: round half to even (2.5->2, -3.5->-4, 126.5->126) and the abs-max element at +-127.5 is "
          "clipped to +-127 (AQT clips before rounding; no -128).",
          dims(s, **I8), s, 9622, {"post": half_points(8, -6, -7)}, 1, "none", exact, []))

C.append(("qj23_intmp_w4_dense_half_points",
          "intmp w_bits=4 dense (AQT, Q=7.5): weight columns on scale 2^-3 with exact half-points (2.5->2, -3.5->-4, "
          "6.5->6) and negative abs-max -7.5 clipped to -7; gate kernel columns on 2^0.",
          dims(s, shared_experts=0, **MP4), s, 9623, {"post": half_points(4, 0, -3, x=False)}, 1, "none", exact,
          []))

s = shp(2, 8, 8, 8, 4, 2)
C.append(("qj24_intmp_w8_dense_capacity_training",
          "intmp w_bits=8 dense capacity (cf=1) in training: expert kernels per (expert, column); dispatch and combine "
          "einsums quantize their rhs only (the 0/1 mask -> 127/127.5, the combine weights per (b,s) over (E,C)).",
          dims(s, capacity_factor=1.0, **MP8), s, 9624, {"gscale": 0.6}, 1, "none", dropped,
          ["no_dispatch_quant"]))

C.append(("qj25_intmp_w4_dense_capacity_training",
          "intmp w_bits=4 dense capacity (cf=1) in training: the dispatch mask 1 -> 7 with scale 1/7.5, combine weights "
          "4-bit per (b,s) over (E,C).",
          dims(s, capacity_factor=1.0, **MP4), s, 9625, {"gscale": 0.6}, 1, "none", dropped,
          ["no_dispatch_quant"]))

C.append(("qj26_int8_dense_capacity_training_gpt_oss_bias",
          "int8 dense capacity (cf=1) in training with GPT-OSS activation and mlp_bias: empty capacity slots carry "
          "bias-only rows, which enter the combine's per-(b,m) scale over (E,C).",
          dims(s, capacity_factor=1.0, decoder_block="gpt_oss", mlp_activations=["sigmoid", "linear"],
               mlp_activations_limit=1.3, mlp_bias=True, load_balance_loss_weight=0.0, **I8), s, 9626,
          {"gscale": 0.6, "wiscale": 1.3}, 1, "none", both(dropped, clamped), ["no_dispatch_quant"]))

C.append(("qj27_intmp_w8_dense_capacity_inference",
          "intmp w_bits=8 dense capacity in inference: dispatch/combine plain, expert kernels weight-only.",
          dims(s, capacity_factor=1.0, model_call_mode="inference", **MP8), s, 9627, {"gscale": 0.6}, 1, "none",
          dropped, ["inference_quant_dispatch"]))

s = shp(2, 4, 8, 8, 8, 4)
C.append(("qj28_int8_sparse_qwen3_norm_topk_linear",
          "int8 sparse megablox, qwen3: k=4, norm_topk_prob, linear activations.",
          dims(s, sparse_matmul=True, decoder_block="qwen3", norm_topk_prob=True, mlp_activations=["linear", "linear"],
               load_balance_loss_weight=0.0, **I8), s, 9628, {"gscale": 0.6}, 1, "none", None, []))

s = shp(2, 4, 8, 8, 16, 4)
C.append(("qj29_int8_sparse_deepseek3_groups",
          "int8 sparse megablox, DeepSeek-V3 group routing on quantized gate logits (sigmoid, bias, 4 groups / top 2).",
          dims(s, sparse_matmul=True, decoder_block="deepseek", model_name="deepseek3-test", routed_score_func="sigmoid",
               routed_bias=True, routed_bias_update_rate=0.001, routed_scaling_factor=2.5, n_routing_groups=4,
               topk_routing_group=2, load_balance_loss_weight=0.001, **I8), s, 9629, {"gscale": 0.7, "bscale": 0.1},
          1, "none", group_changes, []))

s = shp(2, 4, 8, 8, 8, 2)
C.append(("qj30_int8_dense_single_act_shared",
          "int8 dense dropless with mlp_activations=['silu'] (one activation: routed experts still act(h0)*h1; the "
          "shared MlpBlock has a single 'wi' kernel).",
          dims(s, mlp_activations=["silu"], shared_experts=1, **I8), s, 9630, {"gscale": 0.6}, 1, "none", None, []))

C.append(("qj31_int8_dense_gate_inputs",
          "int8 dense dropless with a separate gate_inputs tensor for routing (quantized per token in the gate).",
          dims(s, **I8), s, 9631, {"gscale": 0.6, "gate_inputs": True}, 1, "none", None, []))

s = shp(2, 8, 16, 24, 4, 2)
C.append(("qj32_int8_sparse_megablox_larger",
          "int8 sparse megablox at D=16, H=24, E=4, 32 tokens.",
          dims(s, sparse_matmul=True, **I8), s, 9632, {"gscale": 0.4}, 1, "none", None, []))

s = shp(2, 4, 8, 8, 8, 2)
C.append(("qj33_int8_sparse_ragged_dot_gpt_oss_bias_shared",
          "int8 sparse via jax.lax.ragged_dot (megablox=false, tokamax=false): experts unquantized, gate and shared "
          "expert quantized; GPT-OSS activation + mlp_bias.",
          dims(s, sparse_matmul=True, megablox=False, decoder_block="gpt_oss", mlp_activations=["sigmoid", "linear"],
               mlp_activations_limit=0.7, mlp_bias=True, shared_experts=1, load_balance_loss_weight=0.0, **I8), s,
          9633, {"gscale": 0.6, "wiscale": 1.5}, 1, "none", clamped, []))

C.append(("qj34_int8_sparse_tokamax_and_megablox",
          "int8 sparse with use_tokamax_gmm=true and megablox=true (tokamax branch; same quantized numerics).",
          dims(s, sparse_matmul=True, megablox=True, use_tokamax_gmm=True, **I8), s, 9634, {"gscale": 0.6}, 1, "none",
          None, []))

C.append(("qj35_intmp_w4_dense_capacity_inference_cp2",
          "intmp w_bits=4 dense capacity inference with two sub-sequences (cp=2).",
          dims(shp(2, 8, 8, 8, 4, 2), capacity_factor=1.0, model_call_mode="inference",
               ici_context_autoregressive_parallelism=2, **MP4), shp(2, 8, 8, 8, 4, 2), 9635, {"gscale": 0.6}, 1,
          "none", dropped, []))

def boost_expert(e_list, f=3.0):
    def p(T, rng):
        for e in e_list:
            for n in ("wi_0", "wi_1", "wo"):
                T[n][e] *= f
    return p


def unused(e_list):
    def n(out, st, T, case):
        return not np.isin(out["top_k_indices"], e_list).any()
    return n


def unused_gate(e_list):
    def p(T, rng):
        T["gate_kernel"][:, e_list] -= 1.5
    return p


def chain(*ps):
    def p(T, rng):
        for q in ps:
            q(T, rng)
    return p


s = shp(2, 4, 8, 8, 8, 2)
C.append(("qj36_int8_sparse_unused_expert_sets_scale",
          "int8 sparse megablox: expert 5 receives no token but its (3x larger) weights hold every column's abs-max, "
          "so the shared per-column qwix scale comes from an unused expert (scale over all experts, not only used ones).",
          dims(s, sparse_matmul=True, **I8), s, 9636,
          {"gscale": 0.6, "post": chain(boost_expert([5]), unused_gate([5]))}, 1, "none", unused([5]),
          ["used_experts_only"]))

C.append(("qj37_int8_sparse_ep2_unused_expert_sets_scale",
          "int8 sparse megablox EP=2 batch sharded: expert 6 (shard 1) gets no token but sets shard 1's column scales.",
          dims(s, sparse_matmul=True, **I8), s, 9637,
          {"gscale": 0.6, "post": chain(boost_expert([6]), unused_gate([6]))}, 2, "batch_sharded",
          both(unused([6]), ep_disc), ["used_experts_only", "ep_global_scale"]))

C.append(("qj38_intmp_w4_sparse_ep2_batch_sharded",
          "intmp w_bits=4 sparse megablox with EP=2 batch sharded (weight-only per (expert, column): EP must not change "
          "the scales); positive abs-max per slice.",
          dims(s, sparse_matmul=True, **MP4), s, 9638, {"gscale": 0.6, "post": pos_absmax(1)}, 2, "batch_sharded",
          None, []))

s = shp(2, 4, 8, 8, 4, 2)
C.append(("qj39_int8_sparse_random_routing",
          "int8 sparse megablox with use_random_routing (injected random_top_k_indices): weights are the raw quantized "
          "gate logits at the drawn ids.",
          dims(s, sparse_matmul=True, use_random_routing=True, **I8), s, 9639, {"gscale": 0.6}, 1, "none", None, []))

def grid_slices(A, red, rng, pos=False):
    """Put every slice over `red` on an integer grid n*s (s a power of two), with one element at +-127.5*s."""
    red = tuple(r % A.ndim for r in red)
    keep = [i for i in range(A.ndim) if i not in red]
    P = np.transpose(A, keep + list(red))
    sh = P.shape
    M = P.reshape(int(np.prod([sh[i] for i in range(len(keep))])), -1).copy()
    for r in range(M.shape[0]):
        row = M[r]
        s = 2.0 ** np.round(np.log2(np.abs(row).max() / 127.5))
        n = np.clip(np.rint(row / s), -127, 127)
        j = rng.integers(row.size)
        n[j] = 127.5 * (1.0 if (pos or rng.random() < 0.5) else -1.0)
        M[r] = n * s
    P = M.reshape(sh)
    inv = np.argsort(keep + list(red))
    return np.transpose(P, inv)


def grid(weights_mode, ep=1, x=True, shared=False, pos=False):
    def p(T, rng):
        if x:
            T["x"] = grid_slices(T["x"], (-1,), rng)
        T["gate_kernel"] = grid_slices(T["gate_kernel"], (0,), rng)
        for n in ("wi_0", "wi_1", "wo"):
            W = T[n]
            if weights_mode == "per_expert_col":
                T[n] = grid_slices(W, (1,), rng, pos)
            else:  # per column over the local experts and K
                E, K, N = W.shape
                G = W.reshape(ep, (E // ep) * K, N)
                T[n] = grid_slices(G, (1,), rng, pos).reshape(E, K, N)
        if shared:
            for n in ("shared_wi_0", "shared_wi_1", "shared_wi"):
                if n in T:
                    T[n] = grid_slices(T[n], (0,), rng)
            T["shared_wo"] = grid_slices(T["shared_wo"], (0,), rng)
    return p


s = shp(2, 16, 48, 80, 8, 2)
C.append(("qj40_int8_sparse_megablox_large_grid",
          "int8 sparse megablox at D=48, H=80, E=8, 32 tokens; x rows, gate columns and weight columns on exact "
          "integer grids (power-of-two scales) so only the wo-input rows are random w.r.t. rounding.",
          dims(s, sparse_matmul=True, **I8), s, 9640, {"gscale": 0.3, "post": grid("col_shared")}, 1, "none", None,
          ["per_expert_col"]))

C.append(("qj41_int8_dense_large_grid",
          "int8 dense dropless at D=48, H=80, E=8, 32 tokens, grid-designed inputs.",
          dims(s, **I8), s, 9641, {"gscale": 0.3, "post": grid("per_expert_col")}, 1, "none", None, []))

C.append(("qj42_intmp_w4_sparse_large_grid",
          "intmp w_bits=4 sparse megablox at D=48, H=80, E=8 (weight-only; weights on an 8-bit grid, i.e. random w.r.t. the 4-bit grid; positive abs-max per slice).",
          dims(s, sparse_matmul=True, **MP4), s, 9642, {"gscale": 0.3, "post": grid("per_expert_col", pos=True)}, 1,
          "none", None, []))

s2 = shp(2, 16, 48, 40, 8, 2)
C.append(("qj43_intmp_w8_dense_large_shared_grid",
          "intmp w_bits=8 dense dropless at D=48, H=40, E=8 with 2 shared experts (Hs=80); weight-only, grid weights.",
          dims(s2, shared_experts=2, **MP8), s2, 9643, {"gscale": 0.3, "post": grid("per_expert_col", shared=True)},
          1, "none", None, []))

s3 = shp(4, 8, 48, 80, 8, 2)
C.append(("qj44_int8_sparse_ep4_large_grid",
          "int8 sparse megablox EP=4 batch sharded at D=48, H=80, E=8: per-shard column scales over 2 local experts.",
          dims(s3, sparse_matmul=True, **I8), s3, 9644, {"gscale": 0.3, "post": grid("col_shared", ep=4)}, 4,
          "batch_sharded", ep_disc, ["ep_global_scale"]))

# the dense path under expert parallelism: the weights are all-gathered, so every scale is the single-device one
s = shp(4, 4, 8, 8, 4, 2)
C.append(("qj45_int8_dense_capacity_training_ep2",
          "int8 dense capacity (cf=1) in training with expert parallelism 2 (batch sharded): dense_matmul has no "
          "shard_map, the expert weights are all-gathered; dispatch/combine quantized; every value single-device.",
          dims(s, capacity_factor=1.0, load_balance_loss_weight=0.01, **I8), s, 9645, {"gscale": 0.6}, 2,
          "batch_sharded", dropped, []))
C.append(("qj46_intmp_w4_dense_ep2",
          "intmp w_bits=4 weight-only on the dense dropless path with expert parallelism 2: scales per (expert, "
          "column) of the gathered weights, as on one device.",
          dims(s, **MP4), s, 9646, {"gscale": 0.6}, 2, "batch_sharded", None, []))

for c in C:
    if want(c[0]):
        build_case(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9])
