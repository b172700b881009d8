// Shared helpers of the Hugging Face reference loops: plain float64 JS over the HF tensor layout, no
// moekit ops. Each family's loop (hf-<family>.ts) is written from that family's published modelling code.

/** A tensor as stored in a HF checkpoint: row-major float64 values. */
export interface HfTensor {
  shape: number[];
  data: Float64Array;
}
export type HfTensors = Record<string, HfTensor>;
export type Vec = number[];

export function need(t: HfTensors, name: string): HfTensor {
  const v = t[name];
  if (v === undefined) throw new Error(`reference: no tensor ${name}`);
  return v;
}

/** torch.nn.functional.linear: W [out, in] (row block `offset` of a stacked tensor), y = W x (+ b). */
export function linear(W: HfTensor, x: Vec, offset = 0, rows?: number, bias?: Vec): Vec {
  const inF = W.shape[W.shape.length - 1]!;
  const out = rows ?? W.shape[W.shape.length - 2]!;
  const y: Vec = new Array<number>(out).fill(0);
  for (let o = 0; o < out; o++) {
    let s = 0;
    const base = offset + o * inF;
    for (let i = 0; i < inF; i++) s += W.data[base + i]! * x[i]!;
    y[o] = s + (bias?.[o] ?? 0);
  }
  return y;
}

/** x @ W for W [in, out] stored at `offset` (GPT-OSS / Llama 4 experts): y[o] = Σ_i x[i] W[i, o]. */
export function matvecInOut(W: HfTensor, x: Vec, offset: number, inF: number, outF: number): Vec {
  const y: Vec = new Array<number>(outF).fill(0);
  for (let i = 0; i < inF; i++) {
    const xi = x[i]!;
    const base = offset + i * outF;
    for (let o = 0; o < outF; o++) y[o] = y[o]! + xi * W.data[base + o]!;
  }
  return y;
}

export const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));
export const silu = (v: number): number => v * sigmoid(v);

export function softmax(v: Vec): Vec {
  const m = Math.max(...v);
  const e = v.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/** Indices of the k largest values, largest first (ties to the lower index). */
export function topk(v: Vec, k: number): number[] {
  return v
    .map((_, i) => i)
    .sort((a, b) => (v[b]! !== v[a]! ? v[b]! - v[a]! : a - b))
    .slice(0, k);
}

export function axpy(y: Vec, a: number, x: Vec): void {
  for (let i = 0; i < y.length; i++) y[i] = y[i]! + a * x[i]!;
}

/** Row `i` of a [..., n] tensor as a vector. */
export function row(t: HfTensor, i: number): Vec {
  const n = t.shape[t.shape.length - 1]!;
  return Array.from(t.data.subarray(i * n, (i + 1) * n));
}

/** A SwiGLU MLP in torch Linear layout: down(act(gate x) * up x). */
export function swiglu(gate: HfTensor, up: HfTensor, down: HfTensor, x: Vec, act: (v: number) => number = silu): Vec {
  const g = linear(gate, x);
  const u = linear(up, x);
  return linear(
    down,
    g.map((v, i) => act(v) * u[i]!),
  );
}

/** Applies a per-token function to x [T, D] (rows of a flat array). */
export function perToken(x: Vec[], f: (xt: Vec) => Vec): Vec[] {
  return x.map(f);
}
