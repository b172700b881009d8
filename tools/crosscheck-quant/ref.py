"""Independent float64 NumPy reference of MaxText's (quantized) MoE layer forward.

Written from ../shared/seed (the seed, SEMANTICS.md, QUANTIZATION.md) only, without reading moekit's source.
"""
import math
import numpy as np


# ----------------------------------------------------------------------------------------------
# quantizers (QUANTIZATION.md "The two integer quantizers")
# ----------------------------------------------------------------------------------------------
class Stats:
    def __init__(self):
        self.min_margin = math.inf          # min distance of a scaled value to a half-point
        self.exact_half = 0                 # designed exact half-points (not abs-max)
        self.bad_exact = 0                  # exact half-points in tensors not allowed to have them
        self.neg128 = 0                     # qwix negative abs-max -> -128
        self.matmuls = set()
        self.kink = math.inf
        self.topk_gap = math.inf
        self.clamped = 0
        self.dropped = 0

    def note(self, **kw):
        pass


def quantize(x, red_axes, bits, kind, stats=None, mask=None, allow_exact=False):
    """Return the dequantized tensor (n * s).  red_axes: the contracting axes of the slice."""
    x = np.asarray(x, dtype=np.float64)
    red_axes = tuple(a % x.ndim for a in red_axes)
    Q = 2.0 ** (bits - 1) - 0.5
    amax = np.max(np.abs(x), axis=red_axes, keepdims=True)
    zero = amax == 0
    safe = np.where(zero, 1.0, amax)
    s = np.where(zero, 1.0, amax / Q)
    v = (x * Q) / safe
    ext = (np.abs(x) == amax) & (~zero)
    v = np.where(ext, np.sign(x) * Q, v)
    if stats is not None:
        d = np.abs(v - np.floor(v) - 0.5)
        sel = ~ext
        if mask is not None:
            sel = sel & np.broadcast_to(mask, x.shape)
        exact = sel & (d == 0)
        nonexact = sel & (d > 0)
        if nonexact.any():
            stats.min_margin = min(stats.min_margin, float(d[nonexact].min()))
        if allow_exact:
            stats.exact_half += int(exact.sum())
        else:
            stats.bad_exact += int(exact.sum())
    if kind == "aqt":
        n = np.rint(np.clip(v, -(Q - 0.5), Q - 0.5))
    elif kind == "qwix":
        n = np.clip(np.rint(v), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        if stats is not None:
            stats.neg128 += int((n == -(2 ** (bits - 1))).sum())
    else:
        raise ValueError(kind)
    return n * s


# ----------------------------------------------------------------------------------------------
# activations (SEMANTICS 2.1)
# ----------------------------------------------------------------------------------------------
def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=axis, keepdims=True)


def act_fn(name):
    if name == "linear":
        return lambda x: x
    if name in ("silu", "swish"):
        return lambda x: x * sigmoid(x)
    if name == "sigmoid":
        return sigmoid
    if name == "relu":
        return lambda x: np.maximum(x, 0.0)
    if name == "gelu":
        return lambda x: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if name == "tanh":
        return np.tanh
    if name == "softplus":
        return lambda x: np.logaddexp(x, 0.0)
    if name == "softmax":
        return softmax
    if name == "sqrtsoftplus":
        return lambda x: np.sqrt(np.logaddexp(x, 0.0))
    raise ValueError(name)


# ----------------------------------------------------------------------------------------------
# the layer
# ----------------------------------------------------------------------------------------------
VARIANT = set()  # alternative (wrong-on-purpose) readings, to measure how discriminating a case is


class QMode:
    """What gets quantized, from the config."""

    def __init__(self, cfg):
        q = cfg.get("quantization", "") or ""
        self.kind = q
        if q == "":
            self.act = None
            self.w = None
        elif q == "int8":
            self.act = 8
            self.w = 8
        elif q == "intmp":
            qc = cfg.get("quant_cfg") or {}
            d = qc.get("__default__", qc)
            self.w = int(d["w_bits"])
            self.act = d.get("a_bits")  # meaning not specified; used only for probing
            if self.act is not None:
                self.act = int(self.act)
        else:
            raise ValueError("unsupported quantization " + q)


def qmatmul_prep(qm, lhs, lhs_axes, rhs, rhs_axes, st, name, lhs_mask=None, lhs_exact=True, rhs_exact=True,
                 lhs_kind="aqt", rhs_kind="aqt", lhs_only_if_act=True):
    """Quantize lhs (activation side) and rhs (weight side) per the mode; returns the two operands."""
    if qm.w is None and qm.act is None:
        return lhs, rhs
    st.matmuls.add(name)
    if qm.act is not None:
        lhs = quantize(lhs, lhs_axes, qm.act, lhs_kind, st, mask=lhs_mask, allow_exact=lhs_exact)
    if qm.w is not None:
        rhs = quantize(rhs, rhs_axes, qm.w, rhs_kind, st, allow_exact=rhs_exact)
    return lhs, rhs


def gate(cfg, qm, x, T, st):
    Wg = T["gate_kernel"]
    xq, wq = qmatmul_prep(qm, x, (-1,), Wg, (0,), st, "BSD,DE->BSE")
    logits = np.einsum("bsd,de->bse", xq, wq)
    sf = cfg.get("routed_score_func", "")
    if sf:
        logits = act_fn(sf)(logits)
    pre = logits.copy() if cfg["model_name"].startswith("deepseek3") else None
    if cfg.get("routed_bias"):
        logits = logits + T["gate_bias"][None, None, :]
    return logits, pre


def topk(vals, k):
    """jax.lax.top_k: descending, ties to lower index."""
    idx = np.argsort(-vals, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(vals, idx, -1), idx


def topk_gap(vals, k):
    s = -np.sort(-vals, axis=-1)
    s = s[..., : k + 1]
    s = s[np.isfinite(s).all(-1)] if False else s
    g = s[..., :-1] - s[..., 1:]
    g = g[np.isfinite(g)]
    return float(g.min()) if g.size else math.inf


def get_topk(cfg, g, pre, st, rand_idx=None):
    k = cfg["num_experts_per_tok"]
    E = cfg["num_experts"]
    dec = cfg["decoder_block"]
    if cfg.get("use_random_routing"):
        idx = rand_idx
        return np.take_along_axis(g, idx, -1), idx
    if cfg["model_name"].startswith("deepseek3"):
        ng = cfg.get("n_routing_groups", -1)
        if ng == -1:
            sel = g
        else:
            B, S, _ = g.shape
            grp = g.reshape(B, S, ng, E // ng)
            top2 = -np.sort(-grp, axis=-1)[..., :2]
            gs = top2.sum(-1)
            tg = cfg["topk_routing_group"]
            st.topk_gap = min(st.topk_gap, topk_gap(gs, tg))
            _, gidx = topk(gs, tg)
            gm = np.zeros((B, S, ng))
            np.put_along_axis(gm, gidx, 1.0, -1)
            mask = np.repeat(gm, E // ng, axis=-1)
            sel = np.where(mask > 0, g, -np.inf)
        st.topk_gap = min(st.topk_gap, topk_gap(sel, k))
        _, idx = topk(sel, k)
        w = np.take_along_axis(pre, idx, -1)
    elif dec == "gemma4":
        probs = softmax(g)
        st.topk_gap = min(st.topk_gap, topk_gap(g, k))
        _, idx = topk(g, k)
        w = np.take_along_axis(probs, idx, -1)
    else:
        st.topk_gap = min(st.topk_gap, topk_gap(g, k))
        w, idx = topk(g, k)
    if dec == "deepseek":
        if cfg.get("routed_score_func") == "sigmoid":
            w = w / w.sum(-1, keepdims=True)
        w = w * cfg.get("routed_scaling_factor", 1.0)
    elif dec not in ("llama4", "gemma4"):
        w = softmax(w)
    if cfg.get("norm_topk_prob"):
        w = w / w.sum(-1, keepdims=True)
    return w, idx


def lb_loss_fn(cfg, idx, g):
    E = cfg["num_experts"]
    M = np.zeros(g.shape)
    for j in range(idx.shape[-1]):
        M += np.eye(E)[idx[..., j]]
    P = softmax(g)
    density = M.mean(axis=1)
    dprob = P.mean(axis=1)
    return float(np.mean(density * dprob) * E * E * cfg["load_balance_loss_weight"])


def bias_updates_fn(cfg, idx):
    E = cfg["num_experts"]
    flat = idx.ravel()
    cnt = np.bincount(flat, minlength=E)
    return cfg["routed_bias_update_rate"] * np.sign(flat.size / E - cnt)


def ffn_act(cfg, h0, h1, st, relevant=None):
    dec = cfg["decoder_block"]
    name = cfg["mlp_activations"][0]
    if dec == "gpt_oss":
        L = cfg["mlp_activations_limit"]
        d0 = np.abs(h0 - L)
        d1 = np.minimum(np.abs(h1 - L), np.abs(h1 + L))
        if relevant is not None:
            d0 = d0[np.broadcast_to(relevant, d0.shape)]
            d1 = d1[np.broadcast_to(relevant, d1.shape)]
        if d0.size:
            st.kink = min(st.kink, float(d0.min()), float(d1.min()))
        h0c = np.minimum(h0, L)
        h1c = np.clip(h1, -L, L)
        st.clamped += int((h0 > L).sum() + (np.abs(h1) > L).sum())
        return h0c * act_fn(name)(1.702 * h0c) * (h1c + 1.0)
    if name in ("relu",):
        d = np.abs(h0)
        if relevant is not None:
            d = d[np.broadcast_to(relevant, d.shape)]
        if d.size:
            st.kink = min(st.kink, float(d.min()))
    return act_fn(name)(h0) * h1


def capacity(cfg, tokens):
    k = cfg["num_experts_per_tok"]
    E = cfg["num_experts"]
    cf = cfg["capacity_factor"]
    return int(max(math.ceil(tokens * k / E) * cf, cf))


def gen_masks(cfg, idx, probs, C):
    """generate_masks on [B, S', K] (S' = the (sub-)sequence); probs [B,S',E]. returns combine[B,S',E,C], kept[B,S',K]."""
    B, S, K = idx.shape
    E = cfg["num_experts"]
    combine = np.zeros((B, S, E, C))
    kept = np.zeros((B, S, K), dtype=np.int32)
    for b in range(B):
        cnt = np.zeros(E, dtype=np.int64)
        # one-hot cumsum over the fused (s, k) axis
        emask = np.zeros((S, K, E), dtype=np.int64)
        pos = np.zeros((S, K, E), dtype=np.int64)
        for s in range(S):
            for j in range(K):
                e = idx[b, s, j]
                cnt[e] += 1
                emask[s, j, e] = 1
                pos[s, j, e] = cnt[e]
        trunc = emask * (pos <= C)
        comb_mask = trunc.sum(1)  # [S,E]
        kept[b] = trunc.sum(-1)
        sp = probs[b] * comb_mask
        tokpos = (pos * emask).sum(1) * comb_mask  # [S,E]
        for s in range(S):
            for e in range(E):
                p = tokpos[s, e]
                if 1 <= p <= C:
                    combine[b, s, e, p - 1] = sp[s, e]
    return combine, kept


def dense(cfg, qm, x, g, pre, T, st, out):
    B, S, D = x.shape
    E = cfg["num_experts"]
    K = cfg["num_experts_per_tok"]
    dec = cfg["decoder_block"]
    w, idx = get_topk(cfg, g, pre, st, T.get("random_top_k_indices"))
    out["top_k_weights"] = w
    out["top_k_indices"] = idx.astype(np.int32)
    inference = cfg.get("model_call_mode", "") == "inference"
    W = np.zeros((B, S, E))
    if dec == "llama4":
        x = x * sigmoid(w)
        np.put_along_axis(W, idx, np.ones_like(w), -1)
    else:
        np.put_along_axis(W, idx, w, -1)
    if not inference and cfg["load_balance_loss_weight"] > 0:
        out["lb_loss"] = lb_loss_fn(cfg, idx, g)
    if cfg.get("routed_bias") and cfg.get("routed_bias_update_rate", 0) > 0:
        out["bias_updates"] = bias_updates_fn(cfg, idx)
    w0, w1, wo = T["wi_0"], T["wi_1"], T["wo"]
    if dec == "gemma4":
        wo = wo * T["per_expert_scale"][:, None, None]
    bias = cfg.get("mlp_bias")
    cf = cfg.get("capacity_factor", -1)
    if cf > 0:
        if dec == "llama4":
            raise ValueError("llama4 + capacity")
        if not inference:
            C = capacity(cfg, S)
            combine, kept = gen_masks(cfg, idx, W, C)
            out["expert_capacity"] = np.int32(C)
            out["kept_mask"] = kept
            st.dropped = int((kept == 0).sum())
            dispatch = (combine != 0).astype(np.float64)
            # dispatch BSM,BSEC->EBCM (training: quantized)
            xl, mr = x, dispatch
            if (qm.w is not None or qm.act is not None) and "no_dispatch_quant" not in VARIANT:
                st.matmuls.add("BSM,BSEC->EBCM")
                if qm.act is not None:
                    xl = quantize(x, (1,), qm.act, "aqt", st, allow_exact=True)
                if qm.w is not None:
                    mr = quantize(dispatch, (1,), qm.w, "aqt", st)
            disp = np.einsum("bsm,bsec->ebcm", xl, mr)
            a, b_ = qmatmul_prep(qm, disp, (-1,), w0, (1,), st, "EBCM,EMH->EBCH", lhs_exact=False)
            h0 = np.einsum("ebcm,emh->ebch", a, b_)
            a, b_ = qmatmul_prep(qm, disp, (-1,), w1, (1,), st, "EBCM,EMH->EBCH", lhs_exact=False)
            h1 = np.einsum("ebcm,emh->ebch", a, b_)
            if bias:
                h0 = h0 + T["wi_0_bias"][:, None, None, :]
                h1 = h1 + T["wi_1_bias"][:, None, None, :]
            h = ffn_act(cfg, h0, h1, st)
            a, b_ = qmatmul_prep(qm, h, (-1,), wo, (1,), st, "EBCH,EHM->EBCM", lhs_exact=False)
            o = np.einsum("ebch,ehm->ebcm", a, b_)
            if bias:
                o = o + T["wo_bias"][:, None, None, :]
            ol, cr = o, combine
            if (qm.w is not None or qm.act is not None) and "no_dispatch_quant" not in VARIANT:
                st.matmuls.add("EBCM,BSEC->BSM")
                if qm.act is not None:
                    ol = quantize(o, (0, 2), qm.act, "aqt", st, allow_exact=False)
                if qm.w is not None:
                    cr = quantize(combine, (2, 3), qm.w, "aqt", st)
            y = np.einsum("ebcm,bsec->bsm", ol, cr)
            return y
        else:
            if bias:
                raise ValueError("dense inference capacity + mlp_bias refused")
            probs = softmax(g)
            cp = cfg.get("ici_context_autoregressive_parallelism", 1)
            if S % cp != 0:
                cp = 1
            sub = S // cp
            C = capacity(cfg, sub)
            out["expert_capacity"] = np.int32(C)
            idx4 = idx.reshape(B * cp, sub, K)
            combine, kept = gen_masks(cfg, idx4, probs.reshape(B * cp, sub, E), C)
            out["kept_mask"] = kept.reshape(B, S, K)
            st.dropped = int((kept == 0).sum())
            combine = combine.reshape(B, cp, sub, E, C)
            dispatch = (combine != 0).astype(np.float64)
            xs = x.reshape(B, cp, sub, D)
            if "inference_quant_dispatch" in VARIANT:
                xq = xs if qm.act is None else quantize(xs, (2,), qm.act, "aqt")
                dq = dispatch if qm.w is None else quantize(dispatch, (2,), qm.w, "aqt")
                disp = np.einsum("bnsm,bnsec->ebncm", xq, dq)
            else:
                disp = np.einsum("bnsm,bnsec->ebncm", xs, dispatch)  # not quantized (inference)
            a, b_ = qmatmul_prep(qm, disp, (-1,), w0, (1,), st, "EBNCM,EMH->EBNCH", lhs_exact=False)
            h0 = np.einsum("ebncm,emh->ebnch", a, b_)
            a, b_ = qmatmul_prep(qm, disp, (-1,), w1, (1,), st, "EBNCM,EMH->EBNCH", lhs_exact=False)
            h1 = np.einsum("ebncm,emh->ebnch", a, b_)
            h = ffn_act(cfg, h0, h1, st)
            a, b_ = qmatmul_prep(qm, h, (-1,), wo, (1,), st, "EBNCH,EHM->EBNCM", lhs_exact=False)
            o = np.einsum("ebnch,ehm->ebncm", a, b_)
            if "inference_quant_dispatch" in VARIANT:
                oq = o if qm.act is None else quantize(o, (0, 3), qm.act, "aqt")
                cq = combine if qm.w is None else quantize(combine, (3, 4), qm.w, "aqt")
                y = np.einsum("ebncm,bnsec->bnsm", oq, cq)
            else:
                y = np.einsum("ebncm,bnsec->bnsm", o, combine)
            return y.reshape(B, S, D)
    # dropless
    a, b_ = qmatmul_prep(qm, x, (-1,), w0, (1,), st, "BSM,EMH->BSEH")
    h0 = np.einsum("bsm,emh->bseh", a, b_)
    a, b_ = qmatmul_prep(qm, x, (-1,), w1, (1,), st, "BSM,EMH->BSEH")
    h1 = np.einsum("bsm,emh->bseh", a, b_)
    if bias:
        h0 = h0 + T["wi_0_bias"][None, None]
        h1 = h1 + T["wi_1_bias"][None, None]
    rel = (W != 0)[..., None]
    h = ffn_act(cfg, h0, h1, st, relevant=rel)
    a, b_ = qmatmul_prep(qm, h, (-1,), wo, (1,), st, "BSEH,EHM->BSEM", lhs_mask=rel, lhs_exact=False)
    o = np.einsum("bseh,ehm->bsem", a, b_)
    if bias:
        o = o + T["wo_bias"][None, None]
    return np.einsum("bsem,bse->bsm", o, W)


def sparse(cfg, qm, x, g, pre, T, st, out, ep=1, ep_path="none"):
    B, S, D = x.shape
    E = cfg["num_experts"]
    K = cfg["num_experts_per_tok"]
    dec = cfg["decoder_block"]
    w, idx = get_topk(cfg, g, pre, st, T.get("random_top_k_indices"))
    out["top_k_weights"] = w
    out["top_k_indices"] = idx.astype(np.int32)
    # side outputs (per shard for batch-sharded EP)
    lbw = cfg["load_balance_loss_weight"]
    upd = cfg.get("routed_bias") and cfg.get("routed_bias_update_rate", 0) > 0
    if ep > 1 and ep_path == "batch_sharded":
        Bl = B // ep
        per_lb = [lb_loss_fn(cfg, idx[i * Bl:(i + 1) * Bl], g[i * Bl:(i + 1) * Bl]) for i in range(ep)] if lbw > 0 else None
        per_bu = [bias_updates_fn(cfg, idx[i * Bl:(i + 1) * Bl]) for i in range(ep)] if upd else None
        if per_lb is not None:
            out["lb_loss"] = per_lb[0]
            out["lb_loss_per_shard"] = np.array(per_lb)
        if per_bu is not None:
            out["bias_updates"] = per_bu[0]
            out["bias_updates_per_shard"] = np.array(per_bu)
    else:
        if lbw > 0:
            out["lb_loss"] = lb_loss_fn(cfg, idx, g)
        if upd:
            out["bias_updates"] = bias_updates_fn(cfg, idx)
    x2 = x.reshape(B * S, D)
    if dec == "llama4":
        x2 = x2 * sigmoid(w).reshape(B * S, -1)
    w0, w1, wo = T["wi_0"], T["wi_1"], T["wo"]
    if dec == "gemma4":
        wo = wo * T["per_expert_scale"][:, None, None]
    use_gmm = cfg.get("use_tokamax_gmm") or cfg.get("megablox")
    # quantization of the expert matmuls
    if qm.kind == "int8" and use_gmm:
        st.matmuls.add("gmm")
        El = E // ep

        def qw(Wt):
            if "used_experts_only" in VARIANT:
                used = np.zeros(E, bool)
                used[np.unique(idx)] = True
                parts = []
                for i in range(ep):
                    sl = Wt[i * El:(i + 1) * El]
                    u = used[i * El:(i + 1) * El]
                    if not u.any():
                        parts.append(sl)
                        continue
                    am = np.abs(sl[u]).max(axis=(0, 1), keepdims=True)
                    sc = np.where(am == 0, 1, am / 127.5)
                    parts.append(np.clip(np.rint(sl / sc), -128, 127) * sc)
                return np.concatenate(parts, 0)
            if "ep_global_scale" in VARIANT or "per_expert_col" in VARIANT:
                if "per_expert_col" in VARIANT:
                    return quantize(Wt, (1,), 8, "qwix", st, allow_exact=True)
                return quantize(Wt, (0, 1), 8, "qwix", st, allow_exact=True)
            parts = [quantize(Wt[i * El:(i + 1) * El], (0, 1), 8, "qwix", st, allow_exact=True) for i in range(ep)]
            return np.concatenate(parts, 0)

        def qa(a, exact=True):
            return quantize(a, (-1,), 8, "qwix", st, allow_exact=exact)
    elif qm.kind == "intmp" and use_gmm:
        st.matmuls.add("gmm(weight-only per expert,column)")

        def qw(Wt):
            if "intmp_sparse_qwix" in VARIANT:
                return quantize(Wt, (1,), qm.w, "qwix", st, allow_exact=True)
            if "intmp_sparse_col_shared" in VARIANT:
                return quantize(Wt, (0, 1), qm.w, "aqt", st, allow_exact=True)
            return quantize(Wt, (1,), qm.w, "aqt", st, allow_exact=True)

        def qa(a, exact=True):
            return a
    elif qm.kind == "intmp":
        raise ValueError("intmp + ragged_dot: unspecified")
    else:
        def qw(Wt):
            return Wt

        def qa(a, exact=True):
            return a
    flat = idx.reshape(-1)
    order = np.argsort(flat, kind="stable")
    rows = np.repeat(x2, K, axis=0)[order]
    ex = flat[order]
    qrows = qa(rows, dec != "llama4")
    Q0, Q1, Qo = qw(w0), qw(w1), qw(wo)
    h0 = np.einsum("rd,rdh->rh", qrows, Q0[ex])
    h1 = np.einsum("rd,rdh->rh", qrows, Q1[ex])
    if cfg.get("mlp_bias"):
        h0 = h0 + T["wi_0_bias"][ex]
        h1 = h1 + T["wi_1_bias"][ex]
    h = ffn_act(cfg, h0, h1, st)
    o = np.einsum("rh,rhd->rd", qa(h, False), Qo[ex])
    if cfg.get("mlp_bias"):
        o = o + T["wo_bias"][ex]
    unsorted = o[np.argsort(order, kind="stable")].reshape(B * S, K, D)
    ww = np.ones((B * S, K)) if dec == "llama4" else w.reshape(B * S, K)
    y = np.einsum("tkd,tk->td", unsorted, ww)
    return y.reshape(B, S, D)


def shared_block(cfg, qm, x, T, st):
    acts = cfg["mlp_activations"]
    hs = None
    for i, a in enumerate(acts):
        name = "shared_wi" if len(acts) == 1 else f"shared_wi_{i}"
        xq, wq = qmatmul_prep(qm, x, (-1,), T[name], (0,), st, "BSD,DH->BSH")
        hi = act_fn(a)(np.einsum("bsd,dh->bsh", xq, wq))
        hs = hi if hs is None else hs * hi
    hq, wq = qmatmul_prep(qm, hs, (-1,), T["shared_wo"], (0,), st, "BSH,HD->BSD", lhs_exact=False)
    return np.einsum("bsh,hd->bsd", hq, wq)


def forward(case, qmode_override=None):
    cfg = case["config"]
    T = {}
    for n in case["input_names"]:
        t = case["tensors"][n]
        T[n] = np.array(t["data"], dtype=np.float64 if t["dtype"] != "int32" else np.int64).reshape(t["shape"])
    ep = case.get("expert_parallelism", 1)
    ep_path = case.get("expert_parallelism_path", "none")
    qm = QMode(cfg) if qmode_override is None else qmode_override
    st = Stats()
    out = {}
    x = T["x"]
    gin = T.get("gate_inputs", x)
    g, pre = gate(cfg, qm, gin, T, st)
    out["gate_logits"] = g
    if pre is not None:
        out["pre_bias_logits"] = pre
    if cfg.get("sparse_matmul"):
        y = sparse(cfg, qm, x, g, pre, T, st, out, ep, ep_path)
    else:
        y = dense(cfg, qm, x, g, pre, T, st, out)
    if cfg.get("shared_experts", 0) > 0:
        sh = shared_block(cfg, qm, x, T, st)
        out["routed_output"] = y
        out["shared_output"] = sh
        y = y + sh
    out["output"] = y
    return out, st
