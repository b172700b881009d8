// Independent AQT weight-only dequantization, for tests of quantized layers.
import { tensor, type Tensor } from "../../src/core/tensor.js";

/** AQT weight-only dequantization of w [..., K, N] per (leading index, column) over K, computed independently. */
export function dequantize(w: Tensor, bits: number): Tensor {
  const [K, N] = w.shape.slice(-2) as [number, number];
  const lead = w.size / (K * N);
  const Q = 2 ** (bits - 1) - 0.5;
  const out = new Float64Array(w.size);
  for (let l = 0; l < lead; l++) {
    for (let j = 0; j < N; j++) {
      const at = (p: number): number => (l * K + p) * N + j;
      let m = 0;
      for (let p = 0; p < K; p++) m = Math.max(m, Math.abs(w.data[at(p)]!));
      const s = m === 0 ? 1 : m / Q;
      for (let p = 0; p < K; p++) {
        const v = Math.max(-(Q - 0.5), Math.min(Q - 0.5, w.data[at(p)]! / s));
        // the values here are never half-points: Math.round is round-half-even for them
        out[at(p)] = Math.round(v) * s;
      }
    }
  }
  return tensor(out, w.shape, w.dtype);
}
