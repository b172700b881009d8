import { allocate, type TypedArray } from "../../../core/dtype.js";
import type { Tensor } from "../../../core/tensor.js";
import type { Aval } from "../../../prims/shape-rules.js";

/** [b,m,k] x [b,k,n] -> [b,m,n], float64 accumulation. */
export function batchMatmul(a: Tensor, b: Tensor, out: Aval): TypedArray {
  const [B, M, K] = a.shape as [number, number, number];
  const N = b.shape[2]!;
  const o = allocate(out.dtype, B * M * N);
  const x = a.data;
  const y = b.data;
  for (let bb = 0; bb < B; bb++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let acc = 0;
        for (let p = 0; p < K; p++) acc += x[(bb * M + i) * K + p]! * y[(bb * K + p) * N + j]!;
        o[(bb * M + i) * N + j] = acc;
      }
    }
  }
  return o;
}
