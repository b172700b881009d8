"""BLAS reference for `npm run bench`: the MoE layer's expert matmuls alone, through numpy's BLAS (OpenBLAS in
numpy's wheels). Each of E experts gets T*K/E rows: two up-projections [rows, D] @ [D, H] and one down-projection
[rows, H] @ [H, D], float32, into preallocated outputs. No routing, gather, activation or combine: a ceiling on what
a tuned general-purpose GEMM does with the layer's useful FLOPs on this machine. Prints one JSON line.

Usage: OPENBLAS_NUM_THREADS=n python3 blas_gemm.py T D H E K threads runs
"""
import json
import statistics
import sys
import time

import numpy as np


def blas_name():
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy: no dict form
        return "unknown"


def main():
    T, D, H, E, K, threads, runs = (int(v) for v in sys.argv[1:8])
    rows = T * K // E
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, D), dtype=np.float32)
    a = rng.standard_normal((rows, H), dtype=np.float32)
    w0 = rng.standard_normal((E, D, H), dtype=np.float32)
    w1 = rng.standard_normal((E, D, H), dtype=np.float32)
    wo = rng.standard_normal((E, H, D), dtype=np.float32)
    h0 = np.empty((rows, H), np.float32)
    h1 = np.empty((rows, H), np.float32)
    o = np.empty((rows, D), np.float32)
    times = []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        for e in range(E):
            np.matmul(x, w0[e], out=h0)
            np.matmul(x, w1[e], out=h1)
            np.matmul(a, wo[e], out=o)
        if i > 0:
            times.append(time.perf_counter() - t0)
    print(json.dumps({"peer": "blas", "blas": blas_name(), "numpy": np.__version__, "threads": threads,
                      "rows_per_expert": rows, "median_s": statistics.median(times), "runs_s": times, "runs": runs}))


if __name__ == "__main__":
    main()
