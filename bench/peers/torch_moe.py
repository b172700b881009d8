"""PyTorch peer for `npm run bench`: a Hugging Face-style sparse MoE block (Mixtral/Qwen2-MoE loop over
experts: softmax router, top-k, renormalise, SwiGLU experts, index_add combine). Prints one JSON line.

Usage: OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 torch_moe.py T D H E K dtype threads runs [backward]
"""
import json
import statistics
import sys
import time

import torch


def moe_block(x, router, w1, w3, w2, k):
    logits = x @ router
    probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
    top_w, top_i = torch.topk(probs, k, dim=-1)
    top_w = (top_w / top_w.sum(dim=-1, keepdim=True)).to(x.dtype)
    out = torch.zeros_like(x)
    for e in range(w1.shape[0]):
        tok, slot = torch.where(top_i == e)
        if tok.numel() == 0:
            continue
        xe = x[tok]
        h = torch.nn.functional.silu(xe @ w1[e]) * (xe @ w3[e])
        out.index_add_(0, tok, (h @ w2[e]) * top_w[tok, slot, None])
    return out


def main():
    T, D, H, E, K = (int(v) for v in sys.argv[1:6])
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[sys.argv[6]]
    threads, runs = int(sys.argv[7]), int(sys.argv[8])
    backward = len(sys.argv) > 9 and sys.argv[9] == "backward"
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(T, D, generator=g).to(dtype)
    router = (torch.randn(D, E, generator=g) / D**0.5).to(dtype)
    w1 = (torch.randn(E, D, H, generator=g) / D**0.5).to(dtype)
    w3 = (torch.randn(E, D, H, generator=g) / D**0.5).to(dtype)
    w2 = (torch.randn(E, H, D, generator=g) / H**0.5).to(dtype)
    params = [w1, w3, w2, router]
    if backward:
        for p in params + [x]:
            p.requires_grad_(True)
    times = []
    for i in range(runs + 1):
        for p in params + [x]:
            p.grad = None
        t0 = time.perf_counter()
        if backward:
            out = moe_block(x, router, w1, w3, w2, K)
            out.float().square().sum().backward()
        else:
            with torch.no_grad():
                out = moe_block(x, router, w1, w3, w2, K)
        t1 = time.perf_counter()
        if i > 0:
            times.append(t1 - t0)
    print(json.dumps({"peer": "pytorch", "version": torch.__version__, "dtype": sys.argv[6], "threads": threads,
                      "backward": backward, "median_s": statistics.median(times), "runs": runs}))


if __name__ == "__main__":
    main()
