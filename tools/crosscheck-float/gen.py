"""Draws and writes the cross-check cases (the JSON format of ../shared/golden) with ref.py."""
import json, os, sys, copy, math, time
import numpy as np
sys.path.insert(0, os.path.dirname(__file__))
import ref

HERE = os.path.dirname(os.path.abspath(__file__))
# the config defaults of the shared cases (MaxText's base config), and where the new cases go
SHARED = os.environ.get("MOEKIT_SHARED", os.path.join(HERE, "..", "..", "..", "shared"))
BASE = json.load(open(os.path.join(SHARED, "golden", "p01_mixtral_sparse_softmax.json")))["config"]
OUT = os.environ.get("CROSSCHECK_OUT", os.path.join(HERE, "..", "..", "fixtures", "crosscheck-float"))
TOPK_GAP = 1e-3
KINK_GAP = 1e-4

INPUT_ORDER = ["x", "gate_inputs", "gate_kernel", "gate_bias", "wi_0", "wi_1", "wo", "wi_0_bias", "wi_1_bias",
               "wo_bias", "per_expert_scale", "shared_wi", "shared_wi_0", "shared_wi_1", "shared_wo",
               "random_top_k_indices", "cotangent"]
INT_OUT = {"top_k_indices", "expert_capacity", "kept_mask", "ep_all_shards_group_sizes", "ep_ragged_buffer_size",
           "ep_local_group_sizes"}
OUT_ORDER = ["output", "lb_loss", "bias_updates", "top_k_indices", "top_k_weights", "gate_logits",
             "pre_bias_logits"]
SIDE_ORDER = ["routed_output", "shared_output", "expert_capacity", "kept_mask", "lb_loss_per_shard",
              "bias_updates_per_shard", "ep_all_shards_group_sizes", "ep_ragged_buffer_size", "ep_local_group_sizes"]


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def draw(cfg, B, S, rng, scales):
    D = cfg["emb_dim"]; H = cfg["moe_mlp_dim"]; E = cfg["num_experts"]; K = cfg["num_experts_per_tok"]
    sc = dict(x=1.0, gate=0.8, gate_bias=0.2, wi=0.36, wo=0.3, bias=0.25, shared=0.35, cot=1.0)
    sc.update(scales)
    T = {}
    T["x"] = f32(rng.normal(0, sc["x"], (B, S, D)))
    if cfg.get("_gate_inputs"):
        T["gate_inputs"] = f32(rng.normal(0, sc["x"], (B, S, D)))
    T["gate_kernel"] = f32(rng.normal(0, sc["gate"], (D, E)))
    if cfg["routed_bias"]:
        T["gate_bias"] = f32(rng.normal(0, sc["gate_bias"], (E,)))
    T["wi_0"] = f32(rng.normal(0, sc["wi"], (E, D, H)))
    T["wi_1"] = f32(rng.normal(0, sc["wi"], (E, D, H)))
    T["wo"] = f32(rng.normal(0, sc["wo"], (E, H, D)))
    if cfg["mlp_bias"]:
        T["wi_0_bias"] = f32(rng.normal(0, sc["bias"], (E, H)))
        T["wi_1_bias"] = f32(rng.normal(0, sc["bias"], (E, H)))
        T["wo_bias"] = f32(rng.normal(0, sc["bias"], (E, D)))
    if cfg["decoder_block"] == "gemma4":
        T["per_expert_scale"] = f32(rng.uniform(0.5, 1.5, (E,)))
    if cfg["shared_experts"] > 0:
        Hs = cfg["shared_experts"] * (cfg["mlp_dim"] if cfg["decoder_block"] == "gemma4" else cfg["moe_mlp_dim"])
        acts = cfg["mlp_activations"]
        if len(acts) == 1:
            T["shared_wi"] = f32(rng.normal(0, sc["shared"], (D, Hs)))
        else:
            for i in range(len(acts)):
                T[f"shared_wi_{i}"] = f32(rng.normal(0, sc["shared"], (D, Hs)))
        T["shared_wo"] = f32(rng.normal(0, sc["shared"], (Hs, D)))
    if cfg["use_random_routing"]:
        T["random_top_k_indices"] = rng.integers(0, E, (B, S, K)).astype(np.int64)
    T["cotangent"] = f32(rng.normal(0, sc["cot"], (B, S, D)))
    return T


def min_gap(gapinfo, ignore_zero=False):
    mg = math.inf
    for kind, arr, k in gapinfo:
        a = arr.reshape(-1, arr.shape[-1])
        for row in a:
            v = np.sort(row[np.isfinite(row)])[::-1]
            n = min(k + 1, v.size)
            if n >= 2:
                d = v[:n - 1] - v[1:n]
                if ignore_zero:
                    d = d[d != 0]
                if d.size:
                    mg = min(mg, float(np.min(d)))
    return mg


def make_case(name, desc, over, B, S, ep=1, path="none", seed=0, want=None, scales=None, fix=None,
              max_attempts=400, ignore_zero_gap=False):
    cfg = copy.deepcopy(BASE)
    cfg.update({k: v for k, v in over.items() if not k.startswith("_")})
    cfgx = dict(cfg); cfgx.update({k: v for k, v in over.items() if k.startswith("_")})
    rng = np.random.default_rng(seed)
    for attempt in range(max_attempts):
        T = draw(cfgx, B, S, rng, scales or {})
        if fix:
            fix(T, rng)
        gapinfo, kinks = [], []
        try:
            res, obj = ref.forward(cfg, T, ep, path, kinks=kinks, gapinfo=gapinfo)
        except ref.Refused as e:
            if "overflow" in str(e):
                continue
            raise
        mg = min_gap(gapinfo, ignore_zero_gap)
        karr = [k for k in kinks if isinstance(k, np.ndarray)]
        mk = float(min((k.min() for k in karr if k.size), default=math.inf))
        clamps = [k for k in kinks if isinstance(k, tuple)]
        c0 = sum(c[1] for c in clamps); c1 = sum(c[2] for c in clamps)
        if mg < TOPK_GAP or mk < KINK_GAP:
            continue
        if want is not None and not want(cfg, T, res, {"c0": c0, "c1": c1}):
            continue
        break
    else:
        raise RuntimeError(f"{name}: no acceptable draw")
    gnames = [n for n in INPUT_ORDER if n in T and n not in ("cotangent", "random_top_k_indices")]
    grads = ref.fd_grads(cfg, T, gnames, ep, path)
    dropped = int((res["kept_mask"] == 0).sum()) if "kept_mask" in res else 0
    shapes = {"batch": B, "seq": S, "emb_dim": cfg["emb_dim"], "moe_mlp_dim": cfg["moe_mlp_dim"],
              "num_experts": cfg["num_experts"], "num_experts_per_tok": cfg["num_experts_per_tok"]}
    has_lb = "lb_loss" in res
    obj_s = "sum(output * cotangent)" + (" + lb_loss" if has_lb else "")
    if has_lb and path == "batch_sharded" and cfg["sparse_matmul"]:
        obj_s = "sum(output * cotangent) + mean(lb_loss_per_shard)  [== the single-device lb_loss; see README: expert parallelism]"
    input_names = [n for n in INPUT_ORDER if n in T]
    expected = [n for n in OUT_ORDER if n in res] + list(grads.keys()) + [n for n in SIDE_ORDER if n in res]
    tensors = {}
    for n in input_names:
        a = T[n]
        if n == "random_top_k_indices":
            tensors[n] = {"shape": list(a.shape), "dtype": "int32", "data": [int(v) for v in a.ravel()]}
        else:
            tensors[n] = {"shape": list(a.shape), "dtype": "float32", "data": [float(v) for v in a.ravel()]}
    allv = dict(res); allv.update(grads)
    for n in expected:
        a = np.asarray(allv[n])
        if n in INT_OUT:
            tensors[n] = {"shape": list(a.shape), "dtype": "int32", "data": [int(v) for v in a.ravel()]}
        else:
            tensors[n] = {"shape": list(a.shape), "dtype": "float64", "data": [float(v) for v in a.ravel()]}
    case = {"name": name, "description": desc, "config": cfg, "expert_parallelism": ep,
            "expert_parallelism_path": path, "shapes": shapes, "grad_objective": obj_s,
            "generation": {"seed": seed, "topk_gap_rule": TOPK_GAP, "kink_gap_rule": KINK_GAP, "attempt": attempt,
                           "min_topk_gap": mg, "min_kink_distance": mk, "dropped_assignments": dropped,
                           "clamped_w0": c0, "clamped_w1": c1, "generator": "fjudge independent float64 numpy"},
            "input_names": input_names, "expected_names": expected, "tensors": tensors}
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(case, f, separators=(",", ":"))
    return case
