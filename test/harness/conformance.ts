// Conformance of a backend with the spec: the same computation on `backend` and on the ref backend with every float
// input widened to float64, compared under the tolerance policy (tolerance.ts): int32 outputs exactly, float outputs
// within c·eps of their dtype (plus an atol growing with the contraction length) and, for matmul-like ones, NMSE.
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { useBackend, type BackendChoice } from "../../src/backends/select.js";
import { Tensor } from "../../src/core/tensor.js";
import { assertAllClose, assertExact, assertIdentical, nmse, nmseBound, roundTo, tolVsF64 } from "./tolerance.js";

/** `t` with float values widened to float64 (exact); int32 tensors unchanged. */
export function widen(t: Tensor): Tensor {
  return t.dtype === "int32" || t.dtype === "float64" ? t : new Tensor(Float64Array.from(t.data), t.shape, "float64");
}

/** Runs `f` with `backend` active, then makes ref active again. */
export function onBackend<T>(backend: BackendChoice, f: () => T): T {
  useBackend(backend);
  try {
    return f();
  } finally {
    useBackend("ref");
  }
}

export interface ConformOptions {
  /** contraction length behind each output element, one for all outputs or one per output (default 1) */
  k?: number | readonly number[];
  /** also bound the NMSE (matmul-like primitives) */
  nmse?: boolean;
  /** multiple of eps in the tolerance (default 4) */
  c?: number;
  /** bit for bit equal to the float64 result rounded to the output dtype (correctly rounded ops) */
  bits?: boolean;
}

type Outputs = Tensor | readonly Tensor[];
const list = (o: Outputs): Tensor[] => (o instanceof Tensor ? [o] : [...o]);

/** Root mean square of the finite values: the size of a result, for the k-scaled atol. */
function rms(a: ArrayLike<number>): number {
  let ss = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) continue;
    ss += a[i]! * a[i]!;
    n++;
  }
  return n === 0 ? 0 : Math.sqrt(ss / n);
}

/** One output of the backend against the float64 reference. */
export function expectConforms(got: Tensor, want: Tensor, opts: ConformOptions & { k?: number } = {}, what = "output"): void {
  if (got.shape.join() !== want.shape.join()) throw new Error(`${what}: shape [${got.shape.join(",")}] != ref [${want.shape.join(",")}]`);
  if (got.dtype === "int32" || want.dtype === "int32") {
    if (got.dtype !== want.dtype) throw new Error(`${what}: dtype ${got.dtype} != ref ${want.dtype}`);
    assertExact(got, want, what);
  } else if (opts.bits === true) {
    assertIdentical(
      got,
      Array.from(want.data, (v) => roundTo(got.dtype, v)),
      what,
    );
  } else {
    const k = opts.k ?? 1;
    assertAllClose(got, want, tolVsF64(got.dtype, k, rms(want.data), opts.c), `${what} (${got.dtype} vs float64, k=${k})`);
    if (opts.nmse === true) {
      const e = nmse(got, want);
      if (!(e <= nmseBound(got.dtype))) throw new Error(`${what}: NMSE ${e.toExponential(3)} > ${nmseBound(got.dtype)}`);
    }
  }
}

/**
 * Runs `f(...ins)` on `backend` and on ref with the inputs widened to float64, and checks every output conforms.
 * Returns the backend's outputs (for further checks of the caller's own).
 */
export function conform(
  backend: BackendChoice,
  f: (...xs: Tensor[]) => Outputs,
  ins: readonly Tensor[],
  opts: ConformOptions = {},
  what = "output",
): Tensor[] {
  const got = list(onBackend(backend, () => f(...ins)));
  const want = list(onBackend("ref", () => f(...ins.map(widen))));
  if (got.length !== want.length) throw new Error(`${what}: ${got.length} outputs != ref ${want.length}`);
  got.forEach((g, i) => {
    const k = typeof opts.k === "object" ? opts.k[i] : opts.k;
    expectConforms(g, want[i]!, { ...opts, k }, got.length > 1 ? `${what} ${i}` : what);
  });
  return got;
}

/**
 * Value and gradients of the scalar `f` on `backend` against those on ref in float64 (outputs: the value, then one
 * gradient per input). `k` as in conform, one per output.
 */
export function conformGrad(
  backend: BackendChoice,
  f: (...xs: Tensor[]) => Tensor,
  ins: readonly Tensor[],
  opts: ConformOptions = {},
  what = "gradient",
): Tensor[] {
  const vg = valueAndGrad(f);
  return conform(
    backend,
    (...xs) => {
      const r = vg(...xs);
      return [r.value, ...r.grads];
    },
    ins,
    opts,
    what,
  );
}
