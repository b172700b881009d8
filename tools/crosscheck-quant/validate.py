# validate.py DIR|FILE...: ref.py against golden JSON cases (forward tensors), e.g. ../shared/golden-quant
import json, glob, os, sys, numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref import forward
def check(path, verbose=False):
    case = json.load(open(path))
    try:
        out, st = forward(case)
    except Exception as e:
        print(f"{case['name']}: ERROR {e!r}"); return
    worst = 0; wname = None; missing = []
    for n in case['expected_names']:
        if n.startswith('grad_') or n.startswith('ep_'): continue
        if n not in out: missing.append(n); continue
        t = case['tensors'][n]
        exp = np.array(t['data']).reshape(t['shape'])
        got = np.asarray(out[n], dtype=np.float64).reshape(t['shape'])
        if t['dtype'] == 'int32':
            e = 0.0 if np.array_equal(exp, got) else np.inf
        else:
            e = np.max(np.abs(got - exp)) / (1e-4 * max(1.0, np.max(np.abs(exp)))) if exp.size else 0
        if verbose: print(f"   {n}: {e:.3g}")
        if e > worst: worst, wname = e, n
    extra = [k for k in out if k not in case['expected_names'] and k not in ('routed_output','shared_output')]
    print(f"{'PASS' if worst<=1 else 'FAIL'} {case['name']}: worst scaled {worst:.3g} ({wname}) missing={missing} extra={extra} margin={st.min_margin:.4g} neg128={st.neg128} exact={st.exact_half} bad_exact={st.bad_exact} matmuls={sorted(st.matmuls)}")
for p in sys.argv[1:]:
    for f in sorted(glob.glob(p + '/*.json') if not p.endswith('.json') else [p]):
        check(f)
