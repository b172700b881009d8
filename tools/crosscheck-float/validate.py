import json, sys, glob, os, time
import numpy as np
sys.path.insert(0, os.path.dirname(__file__))
import ref


def load(path):
    d = json.load(open(path))
    T = {}
    for n in d["input_names"]:
        t = d["tensors"][n]
        a = np.array(t["data"], dtype=np.float64).reshape(t["shape"])
        if t["dtype"].startswith("int"):
            a = a.astype(np.int64)
        T[n] = a
    return d, T


def compare(d, res, grads):
    worst = 0.0
    bad = []
    for n in d["expected_names"]:
        t = d["tensors"][n]
        exp = np.array(t["data"], dtype=np.float64).reshape(t["shape"])
        if n.startswith("grad_"):
            got = grads.get(n)
        else:
            got = res.get(n)
        if got is None:
            bad.append((n, "missing"))
            continue
        got = np.asarray(got, dtype=np.float64).reshape(exp.shape) if np.size(got) == exp.size else np.asarray(got)
        if got.shape != exp.shape:
            bad.append((n, f"shape {got.shape} vs {exp.shape}"))
            continue
        if t["dtype"].startswith("int"):
            if not np.array_equal(got, exp):
                bad.append((n, "int mismatch"))
            continue
        scale = max(1.0, float(np.max(np.abs(exp))) if exp.size else 1.0)
        err = float(np.max(np.abs(got - exp))) / scale if exp.size else 0.0
        worst = max(worst, err / 1e-4)
        if err > 1e-4:
            bad.append((n, f"scaled err {err:.3e}"))
    extra = [n for n in res if n not in d["expected_names"]]
    return worst, bad, extra


if __name__ == "__main__":
    files = sys.argv[1:] or sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "golden", "p*.json")))
    for f in files:
        d, T = load(f)
        t0 = time.time()
        try:
            res, obj = ref.forward(d["config"], T, d["expert_parallelism"], d["expert_parallelism_path"])
            gnames = [n[5:] for n in d["expected_names"] if n.startswith("grad_")]
            grads = ref.fd_grads(d["config"], T, gnames, d["expert_parallelism"], d["expert_parallelism_path"])
            worst, bad, extra = compare(d, res, grads)
            print(f"{d['name']}: worst/tol={worst:.3e} bad={bad} extra={extra} ({time.time()-t0:.1f}s)", flush=True)
        except Exception as e:
            print(f"{d['name']}: EXC {type(e).__name__}: {e}", flush=True)
