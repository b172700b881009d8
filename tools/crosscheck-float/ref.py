"""Independent float64 NumPy reference of MaxText's (unquantized) MoE layer.

Written from ../shared/seed (the seed, SEMANTICS.md) and ../shared/golden/README.md only, without reading moekit's source.
"""
import math
import numpy as np

ALL_FLOAT_INPUTS = [
    "x", "gate_inputs", "gate_kernel", "gate_bias", "wi_0", "wi_1", "wo",
    "wi_0_bias", "wi_1_bias", "wo_bias", "per_expert_scale",
    "shared_wi", "shared_wi_0", "shared_wi_1", "shared_wo",
]


class Refused(Exception):
    pass


# ---------------------------------------------------------------- activations
def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _softplus(x):
    return np.logaddexp(0.0, x)


def act_fn(name):
    if name == "linear":
        return lambda x: x
    if name in ("silu", "swish"):
        return lambda x: x * _sigmoid(x)
    if name == "sigmoid":
        return _sigmoid
    if name == "relu":
        return lambda x: np.maximum(x, 0.0)
    if name == "gelu":  # tanh approximation (JAX default approximate=True)
        return lambda x: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if name == "tanh":
        return np.tanh
    if name == "softplus":
        return _softplus
    if name == "sqrtsoftplus":
        return lambda x: np.sqrt(_softplus(x))
    if name == "elu":
        return lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))
    if name == "leaky_relu":
        return lambda x: np.where(x >= 0, x, 0.01 * x)
    if name == "softmax":
        return lambda x: softmax(x, -1)
    raise Refused(f"activation {name} not in judge")


def softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=axis, keepdims=True)


def topk(v, k):
    """jax.lax.top_k along the last axis: descending, ties -> lower index."""
    order = np.argsort(-v, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(v, order, axis=-1), order


def one_hot(idx, n):
    """jax.nn.one_hot: out-of-range -> all zeros."""
    idx = np.asarray(idx)
    return (idx[..., None] == np.arange(n)).astype(np.float64)


# ---------------------------------------------------------------- routing
def gate(cfg, T):
    rin = T["gate_inputs"] if "gate_inputs" in T else T["x"]
    logits = np.einsum("bsd,de->bse", rin, T["gate_kernel"])
    sf = cfg["routed_score_func"]
    if sf:
        logits = act_fn(sf)(logits)
    pre = logits if cfg["model_name"].startswith("deepseek3") else None
    g = logits
    if cfg["routed_bias"]:
        g = g + T["gate_bias"]
    return g, pre


def expert_group_mask(cfg, g):
    E = cfg["num_experts"]
    G = cfg["n_routing_groups"]
    sg = g.reshape(g.shape[:-1] + (G, E // G))
    top2, _ = topk(sg, 2)
    gs = top2.sum(-1)
    _, gidx = topk(gs, cfg["topk_routing_group"])
    gm = one_hot(gidx, G).sum(-2)
    return np.repeat(gm, E // G, axis=-1), gs


def get_topk(cfg, g, pre, T, gapinfo=None):
    k = cfg["num_experts_per_tok"]
    dec = cfg["decoder_block"]
    if cfg["use_random_routing"]:
        idx = T["random_top_k_indices"].astype(np.int64)
        return np.take_along_axis(g, idx, -1), idx
    if cfg["model_name"].startswith("deepseek3"):
        if pre is None:
            raise Refused("deepseek3 with empty routed_score_func")
        if cfg["n_routing_groups"] == -1:
            sel = g
        else:
            m, gs = expert_group_mask(cfg, g)
            if gapinfo is not None:
                gapinfo.append(("group", gs, cfg["topk_routing_group"]))
            sel = np.where(m > 0, g, -np.inf)
        if gapinfo is not None:
            gapinfo.append(("sel", sel, k))
        _, idx = topk(sel, k)
        w = np.take_along_axis(pre, idx, -1)
    elif dec == "gemma4":
        probs = softmax(g, -1)
        if gapinfo is not None:
            gapinfo.append(("sel", g, k))
        _, idx = topk(g, k)
        w = np.take_along_axis(probs, idx, -1)
    else:
        if gapinfo is not None:
            gapinfo.append(("sel", g, k))
        w, idx = topk(g, k)
    if dec == "deepseek":
        if cfg["routed_score_func"] == "sigmoid":
            w = w / w.sum(-1, keepdims=True)
        w = w * cfg["routed_scaling_factor"]
    elif dec not in ("llama4", "gemma4"):
        w = softmax(w, -1)
    if cfg["norm_topk_prob"]:
        w = w / w.sum(-1, keepdims=True)
    return w, idx


def lb_loss_fn(cfg, idx, g):
    E = cfg["num_experts"]
    P = softmax(g, -1)
    M = one_hot(idx, E).sum(2)
    density = M.mean(1)
    dprob = P.mean(1)
    return np.mean(density * dprob) * E * E * cfg["load_balance_loss_weight"]


def bias_update_fn(cfg, idx):
    E = cfg["num_experts"]
    flat = idx.ravel()
    cnt = np.bincount(flat, minlength=E)[:E]
    avg = flat.size / E
    return np.sign(avg - cnt) * cfg["routed_bias_update_rate"]


# ---------------------------------------------------------------- FFN
def ffn_act(cfg, h0, h1, kinks=None):
    a = act_fn(cfg["mlp_activations"][0])
    if cfg["decoder_block"] == "gpt_oss":
        L = cfg["mlp_activations_limit"]
        if L <= 0:
            raise Refused("gpt_oss with mlp_activations_limit <= 0")
        if kinks is not None:
            kinks.append(np.abs(h0 - L).ravel())
            kinks.append(np.abs(np.abs(h1) - L).ravel())
            kinks.append(("clampcount", int((h0 > L).sum()), int((np.abs(h1) > L).sum())))
        h0 = np.minimum(h0, L)
        h1 = np.clip(h1, -L, L)
        return h0 * a(1.702 * h0) * (h1 + 1.0)
    if kinks is not None and cfg["mlp_activations"][0] in ("relu", "leaky_relu"):
        kinks.append(np.abs(h0).ravel())
    return a(h0) * h1


def shared_mlp(cfg, T, kinks=None):
    x = T["x"]
    acts = cfg["mlp_activations"]
    h = None
    for i, an in enumerate(acts):
        w = T["shared_wi"] if len(acts) == 1 else T[f"shared_wi_{i}"]
        pre = np.einsum("bsd,dh->bsh", x, w)
        if kinks is not None and an in ("relu", "leaky_relu"):
            kinks.append(np.abs(pre).ravel())
        v = act_fn(an)(pre)
        h = v if h is None else h * v
    return np.einsum("bsh,hd->bsd", h, T["shared_wo"])


def expert_weights(cfg, T):
    wo = T["wo"]
    if cfg["decoder_block"] == "gemma4":
        wo = wo * T["per_expert_scale"][:, None, None]
    E, D, H = T["wi_0"].shape
    if cfg["mlp_bias"]:
        b0, b1, bo = T["wi_0_bias"], T["wi_1_bias"], T["wo_bias"]
    else:
        b0 = np.zeros((E, H)); b1 = np.zeros((E, H)); bo = np.zeros((E, wo.shape[2]))
    return T["wi_0"], T["wi_1"], wo, b0, b1, bo


# ---------------------------------------------------------------- capacity masks
def capacity(cfg, tokens_per_batch):
    E = cfg["num_experts"]
    cf = cfg["capacity_factor"]
    return int(max(math.ceil(tokens_per_batch / E) * cf, cf))


def masks(cfg, idx, probs, C):
    """generate_masks on [G, S, K] groups (G = B or B*cp). probs [G,S,E]."""
    G, S, K = idx.shape
    E = cfg["num_experts"]
    em = one_hot(idx, E)  # G,S,K,E
    fused = em.reshape(G, S * K, E)
    cnt_f = np.cumsum(fused, 1)
    cnt = cnt_f.reshape(G, S, K, E)
    trunc = em * (cnt <= C)
    comb = trunc.sum(2)  # G,S,E
    probs = probs * comb
    pos = (fused * cnt_f).reshape(G, S, K, E).sum(2) * comb
    oh = one_hot(pos.astype(np.int64), C + 1)
    combine = probs[..., None] * oh
    combine = combine[..., 1:]
    dispatch = (combine != 0).astype(np.float64)
    kept = trunc.sum(3).astype(np.int64)  # G,S,K
    return dispatch, combine, kept


# ---------------------------------------------------------------- paths
def dense_path(cfg, T, x, g, pre, w, idx, kinks=None):
    B, S, D = x.shape
    E = cfg["num_experts"]
    dec = cfg["decoder_block"]
    infer = cfg["model_call_mode"] == "inference"
    w0, w1, wo, b0, b1, bo = expert_weights(cfg, T)
    side = {}
    if dec == "llama4":
        x = x * _sigmoid(w)
        W = None
    else:
        W = np.zeros((B, S, E))
        np.put_along_axis(W, idx, w, axis=-1)
    lb = None
    if not infer and cfg["load_balance_loss_weight"] > 0:
        lb = lb_loss_fn(cfg, idx, g)
    if cfg["capacity_factor"] > 0:
        if not infer:
            if dec == "llama4":
                raise Refused("llama4 + capacity in training")
            C = capacity(cfg, S * cfg["num_experts_per_tok"])
            disp, comb, kept = masks(cfg, idx, W, C)
            side["expert_capacity"] = C
            side["kept_mask"] = kept
            xin = x
            d = np.einsum("bsm,bsec->ebcm", xin, disp)
            h0 = np.einsum("ebcm,emh->ebch", d, w0) + b0[:, None, None, :]
            h1 = np.einsum("ebcm,emh->ebch", d, w1) + b1[:, None, None, :]
            if kinks is not None:
                # only kept slots reach the output
                occ = (np.einsum("bsec->ebc", disp) > 0)
                hh = ffn_act(cfg, h0[occ], h1[occ], kinks)
            h = ffn_act(cfg, h0, h1)
            o = np.einsum("ebch,ehm->ebcm", h, wo) + bo[:, None, None, :]
            out = np.einsum("ebcm,bsec->bsm", o, comb)
        else:
            if cfg["mlp_bias"]:
                raise Refused("dense inference capacity + mlp_bias")
            probs = softmax(g, -1)
            cp = cfg["ici_context_autoregressive_parallelism"]
            if S % cp != 0:
                cp = 1
            sub = S // cp
            C = capacity(cfg, sub * cfg["num_experts_per_tok"])
            K = idx.shape[2]
            disp, comb, kept = masks(cfg, idx.reshape(B * cp, sub, K), probs.reshape(B * cp, sub, E), C)
            side["expert_capacity"] = C
            side["kept_mask"] = kept.reshape(B, S, K)
            xin = x.reshape(B * cp, sub, D)
            d = np.einsum("bsm,bsec->ebcm", xin, disp)
            h0 = np.einsum("ebcm,emh->ebch", d, w0)
            h1 = np.einsum("ebcm,emh->ebch", d, w1)
            if kinks is not None:
                occ = (np.einsum("bsec->ebc", disp) > 0)
                ffn_act(cfg, h0[occ], h1[occ], kinks)
            h = ffn_act(cfg, h0, h1)
            o = np.einsum("ebch,ehm->ebcm", h, wo)
            out = np.einsum("ebcm,bsec->bsm", o, comb).reshape(B, S, D)
    else:
        h0 = np.einsum("bsm,emh->bseh", x, w0) + b0
        h1 = np.einsum("bsm,emh->bseh", x, w1) + b1
        if kinks is not None:
            sel = one_hot(idx, E).sum(2) > 0
            ffn_act(cfg, h0[sel], h1[sel], kinks)
        h = ffn_act(cfg, h0, h1)
        o = np.einsum("bseh,ehm->bsem", h, wo) + bo
        if dec == "llama4":
            W = np.zeros((B, S, E))
            np.put_along_axis(W, idx, np.ones_like(w), axis=-1)
        out = np.einsum("bsem,bse->bsm", o, W)
    return out, lb, side


def sparse_path(cfg, T, x, g, pre, w, idx, kinks=None):
    """Per token, per slot: out[t] = sum_j w[t,j] * FFN_{e_tj}(x_t) (the sort is a permutation)."""
    B, S, D = x.shape
    K = cfg["num_experts_per_tok"]
    dec = cfg["decoder_block"]
    w0, w1, wo, b0, b1, bo = expert_weights(cfg, T)
    lb = None
    if cfg["load_balance_loss_weight"] > 0:
        lb = lb_loss_fn(cfg, idx, g)
    x2 = x.reshape(B * S, D)
    w2 = w.reshape(B * S, K)
    i2 = idx.reshape(B * S, K)
    if dec == "llama4":
        x2 = x2 * _sigmoid(w2)
    xr = np.repeat(x2, K, axis=0)  # row t*K+j
    e = i2.ravel()
    h0 = np.einsum("rd,rdh->rh", xr, w0[e]) + b0[e]
    h1 = np.einsum("rd,rdh->rh", xr, w1[e]) + b1[e]
    h = ffn_act(cfg, h0, h1, kinks)
    o = np.einsum("rh,rhd->rd", h, wo[e]) + bo[e]
    o = o.reshape(B * S, K, D)
    cw = np.ones_like(w2) if dec == "llama4" else w2
    out = np.einsum("tkd,tk->td", o, cw).reshape(B, S, D)
    return out, lb, {}


def ep_side(cfg, idx, g, N, path):
    """Expert-parallel side outputs for the sparse path."""
    B, S, K = idx.shape
    E = cfg["num_experts"]
    El = E // N
    side = {}
    has_lb = cfg["load_balance_loss_weight"] > 0
    has_bu = cfg["routed_bias"] and cfg["routed_bias_update_rate"] > 0
    if path == "batch_sharded":
        if B % N != 0:
            raise Refused("batch not divisible by EP")
        Bl = B // N
        A = np.zeros((N, N), np.int64)
        lbs, bus = [], []
        for s in range(N):
            li = idx[s * Bl:(s + 1) * Bl]
            gsz = np.bincount(li.ravel(), minlength=E)
            A[s] = gsz.reshape(N, El).sum(1)
            if has_lb:
                lbs.append(lb_loss_fn(cfg, li, g[s * Bl:(s + 1) * Bl]))
            if has_bu:
                bus.append(bias_update_fn(cfg, li))
        rows = Bl * S * K
        rbf = cfg["ragged_buffer_factor"]
        if rbf > 0:
            buf = int(rows * rbf)
        else:
            buf = int(rows * min(N, E / K))
        recv = A.sum(0)
        if (recv > buf).any():
            raise Refused(f"ragged buffer overflow: recv {recv.tolist()} > buffer {buf}")
        side["ep_all_shards_group_sizes"] = A
        side["ep_ragged_buffer_size"] = buf
        side["ep_local_group_sizes"] = np.bincount(idx.ravel(), minlength=E).reshape(N, El)
        if has_lb:
            side["lb_loss_per_shard"] = np.array(lbs)
            side["lb_loss"] = lbs[0]
        if has_bu:
            side["bias_updates_per_shard"] = np.array(bus)
            side["bias_updates"] = bus[0]
    elif path == "batch_replicated":
        side["ep_local_group_sizes"] = np.bincount(idx.ravel(), minlength=E).reshape(N, El)
    elif path == "ring_of_experts":
        if B % N != 0:
            raise Refused("batch not divisible by EP (ring psum_scatter)")
        if has_lb:
            side["lb_loss_per_shard"] = np.array([lb_loss_fn(cfg, idx, g)] * N)
        if has_bu:
            side["bias_updates_per_shard"] = np.array([bias_update_fn(cfg, idx)] * N)
    return side


def forward(cfg, T, N=1, path="none", kinks=None, gapinfo=None):
    """Returns dict of named outputs (float64 arrays / ints) and the grad objective."""
    dec = cfg["decoder_block"]
    K = cfg["num_experts_per_tok"]
    if dec == "llama4" and K > 1:
        raise Refused("llama4 with num_experts_per_tok > 1")
    if dec == "llama4" and cfg["capacity_factor"] > 0 and not cfg["sparse_matmul"] and cfg["model_call_mode"] != "inference":
        raise Refused("llama4 + capacity training")
    x = T["x"]
    g, pre = gate(cfg, T)
    w, idx = get_topk(cfg, g, pre, T, gapinfo)
    bu = None
    if cfg["routed_bias"] and cfg["routed_bias_update_rate"] > 0:
        bu = bias_update_fn(cfg, idx)
    if cfg["sparse_matmul"]:
        routed, lb, side = sparse_path(cfg, T, x, g, pre, w, idx, kinks)
    else:
        routed, lb, side = dense_path(cfg, T, x, g, pre, w, idx, kinks)
    res = {"top_k_indices": idx, "top_k_weights": w, "gate_logits": g}
    if pre is not None:
        res["pre_bias_logits"] = pre
    res.update(side)
    out = routed
    if cfg["shared_experts"] > 0:
        sh = shared_mlp(cfg, T, kinks)
        res["routed_output"] = routed
        res["shared_output"] = sh
        out = routed + sh
    res["output"] = out
    if lb is not None:
        res["lb_loss"] = lb
    if bu is not None:
        res["bias_updates"] = bu
    if N > 1 and path != "none":
        if not cfg["sparse_matmul"]:
            pass  # dense path: EP only changes sharding; values are single-device
        else:
            res.update(ep_side(cfg, idx, g, N, path))
    obj = float(np.sum(out * T["cotangent"]))
    if lb is not None:
        obj += float(lb)  # single-device lb (== mean of per-shard values)
    return res, obj


def fd_grads(cfg, T, names, N=1, path="none", h=1e-6):
    grads = {}
    for n in names:
        a = T[n]
        gr = np.zeros_like(a)
        flat = a.reshape(-1)
        gf = gr.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + h
            _, fp = forward(cfg, T, N, path)
            flat[i] = orig - h
            _, fm = forward(cfg, T, N, path)
            flat[i] = orig
            gf[i] = (fp - fm) / (2 * h)
        grads["grad_" + n] = gr
    return grads
