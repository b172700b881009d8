"""Draws and writes the cross-check cases (the JSON format of ../shared/golden-quant)."""
import copy
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# the config defaults of the shared cases (MaxText's base config), and where the new cases go
SHARED = os.environ.get("MOEKIT_SHARED", os.path.join(HERE, "..", "..", "..", "shared"))
BASE = json.load(open(os.path.join(SHARED, "golden-quant", "pq01_int8_dense_softmax.json")))["config"]
OUT = os.environ.get("CROSSCHECK_OUT", os.path.join(HERE, "..", "..", "fixtures", "crosscheck-quant"))
TOPK_GAP, KINK_GAP, QMARGIN = 1e-3, 1e-4, 5e-4
f32 = np.float32


def mkcfg(**kw):
    c = copy.deepcopy(BASE)
    c.update(kw)
    if c["quantization"] == "intmp" and "quant_cfg" in c:
        c["quant_cfg_path"] = "inline:quant_cfg"
    return c


def draw(cfg, shapes, rng, opts):
    B, S, D, H, E = shapes["batch"], shapes["seq"], shapes["emb_dim"], shapes["moe_mlp_dim"], shapes["num_experts"]
    T = {}
    T["x"] = rng.standard_normal((B, S, D))
    if opts.get("gate_inputs"):
        T["gate_inputs"] = rng.standard_normal((B, S, D))
    T["gate_kernel"] = rng.standard_normal((D, E)) * opts.get("gscale", 1.0)
    if cfg.get("routed_bias"):
        T["gate_bias"] = rng.standard_normal(E) * opts.get("bscale", 0.3)
    T["wi_0"] = rng.standard_normal((E, D, H)) / math.sqrt(D) * opts.get("wiscale", 1.0)
    T["wi_1"] = rng.standard_normal((E, D, H)) / math.sqrt(D) * opts.get("wiscale", 1.0)
    T["wo"] = rng.standard_normal((E, H, D)) / math.sqrt(H)
    if cfg.get("mlp_bias"):
        T["wi_0_bias"] = rng.standard_normal((E, H)) * opts.get("biasscale", 0.3)
        T["wi_1_bias"] = rng.standard_normal((E, H)) * opts.get("biasscale", 0.3)
        T["wo_bias"] = rng.standard_normal((E, D)) * opts.get("biasscale", 0.3)
    if cfg["decoder_block"] == "gemma4":
        T["per_expert_scale"] = rng.uniform(0.4, 1.6, E)
    if cfg.get("shared_experts", 0) > 0:
        Hs = cfg["shared_experts"] * (cfg["mlp_dim"] if cfg["decoder_block"] == "gemma4" else cfg["moe_mlp_dim"])
        acts = cfg["mlp_activations"]
        if len(acts) == 1:
            T["shared_wi"] = rng.standard_normal((D, Hs)) / math.sqrt(D)
        else:
            for i in range(len(acts)):
                T[f"shared_wi_{i}"] = rng.standard_normal((D, Hs)) / math.sqrt(D)
        T["shared_wo"] = rng.standard_normal((Hs, D)) / math.sqrt(Hs)
    if "post" in opts:
        opts["post"](T, rng)
    R = {k: v.astype(f32).astype(np.float64) for k, v in T.items()}
    if cfg.get("use_random_routing"):
        R["random_top_k_indices"] = rng.integers(0, E, (B, S, cfg["num_experts_per_tok"])).astype(np.int64)
    return R


ORDER = ["x", "gate_inputs", "gate_kernel", "gate_bias", "wi_0", "wi_1", "wo", "wi_0_bias", "wi_1_bias", "wo_bias",
         "per_expert_scale", "shared_wi", "shared_wi_0", "shared_wi_1", "shared_wo", "random_top_k_indices"]
EXP_ORDER = ["output", "lb_loss", "bias_updates", "top_k_indices", "top_k_weights", "gate_logits", "pre_bias_logits",
             "routed_output", "shared_output", "expert_capacity", "kept_mask", "lb_loss_per_shard",
             "bias_updates_per_shard"]
INT_NAMES = {"top_k_indices", "expert_capacity", "kept_mask"}


def tensor(a, dtype):
    a = np.asarray(a)
    if dtype == "int32":
        data = [int(v) for v in a.ravel()]
    else:
        data = [float(v) for v in a.astype(np.float64).ravel()]
    return {"shape": list(a.shape), "dtype": dtype, "data": data}


def build_case(name, desc, cfg, shapes, seed, opts=None, ep=1, ep_path="none", need=None, variants=(),
               max_attempts=4000):
    opts = opts or {}
    rng = np.random.default_rng(seed)
    for attempt in range(max_attempts):
        T = draw(cfg, shapes, rng, opts)
        names = [n for n in ORDER if n in T]
        case = {"name": name, "description": desc, "config": cfg, "expert_parallelism": ep,
                "expert_parallelism_path": ep_path, "shapes": shapes,
                "grad_objective": "none (forward only: AQT int8 backward uses stochastic rounding)",
                "input_names": names,
                "tensors": {n: tensor(T[n], "int32" if n == "random_top_k_indices" else "float32") for n in names}}
        try:
            out, st = ref.forward(case)
        except FloatingPointError:
            continue
        ok = (st.topk_gap >= TOPK_GAP and st.kink >= KINK_GAP and st.min_margin >= QMARGIN and st.bad_exact == 0)
        if ok and need is not None:
            ok = need(out, st, T, case)
        if ok:
            break
    else:
        raise RuntimeError(f"{name}: no acceptable draw in {max_attempts} attempts")
    # discrimination: how far plausible wrong readings land (in units of the tolerance)
    disc = {}
    tol = 1e-4 * max(1.0, float(np.max(np.abs(out["output"]))))
    for v in variants:
        ref.VARIANT.clear()
        ref.VARIANT.update(v if isinstance(v, (set, tuple, list)) else {v})
        try:
            o2, _ = ref.forward(case)
            disc[str(v)] = float(np.max(np.abs(o2["output"] - out["output"])) / tol)
        except Exception as e:  # noqa
            disc[str(v)] = repr(e)
        ref.VARIANT.clear()
    # float (unquantized) comparison
    c2 = copy.deepcopy(case)
    c2["config"] = dict(cfg, quantization="")
    of, _ = ref.forward(c2)
    same_routing = bool(np.array_equal(of["top_k_indices"], out["top_k_indices"]))
    rel = float(np.max(np.abs(of["output"] - out["output"])) / max(1e-30, np.max(np.abs(out["output"]))))
    exp_names = [n for n in EXP_ORDER if n in out]
    for n in exp_names:
        case["tensors"][n] = tensor(out[n], "int32" if n in INT_NAMES else "float64")
    case["expected_names"] = exp_names
    case["generation"] = {"seed": seed, "topk_gap_rule": TOPK_GAP, "kink_gap_rule": KINK_GAP,
                          "quant_margin_rule": QMARGIN, "attempt": attempt, "min_topk_gap": st.topk_gap,
                          "min_kink_distance": st.kink, "dropped_assignments": st.dropped, "clamped": st.clamped,
                          "quant_min_half_point_margin": st.min_margin, "quant_exact_half_points": st.exact_half,
                          "quant_neg_extreme_to_minus128": st.neg128, "quantized_matmuls": sorted(st.matmuls),
                          "rel_diff_vs_float": rel, "same_routing_as_float": same_routing,
                          "variant_distance_in_tolerances": disc, "generator": "qjudge independent reference"}
    ordered = {k: case[k] for k in ["name", "description", "config", "expert_parallelism", "expert_parallelism_path",
                                    "shapes", "grad_objective", "generation", "input_names", "expected_names",
                                    "tensors"]}
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(ordered, f)
    print(f"{name}: attempt={attempt} gap={st.topk_gap:.3g} kink={st.kink:.3g} margin={st.min_margin:.3g} "
          f"exact={st.exact_half} neg128={st.neg128} dropped={st.dropped} clamped={st.clamped} rel_vs_float={rel:.3g} "
          f"same_routing={same_routing} disc={disc}")
    return case
