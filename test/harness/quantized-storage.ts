// Random quantized weight storage for the served-weight tests: random codes in a format's layout (no fp8 NaN; an odd
// int4 width's unused nibble 0) and scales of a plausible size.
import { Tensor } from "../../src/core/tensor.js";
import { weightLayout, type WeightFormat } from "../../src/prims/quantized-gmm.js";
import { Rng } from "./random.js";

/** Codes and scales of a [G,k,n] weight in `format`. */
export function randomStorage(format: WeightFormat, G: number, k: number, n: number, seed: number): [Tensor, Tensor] {
  const rng = new Rng(seed);
  const layout = weightLayout(format, G, k, n);
  const size = (s: readonly number[]): number => s.reduce((a, d) => a * d, 1);
  const raw = rng.randint([size(layout.codes.shape)], 0, 256).data;
  const codes =
    format === "int8"
      ? new Tensor(
          Int8Array.from(raw, (v) => v - 128),
          layout.codes.shape,
          "int8",
        )
      : new Tensor(
          Uint8Array.from(raw, (v) => (format === "fp8_e4m3" && (v & 0x7f) === 0x7f ? v - 1 : v)),
          layout.codes.shape,
          "uint8",
        );
  if (format === "int4" && n % 2 === 1) for (let row = 0; row < G * k; row++) codes.data[row * ((n + 1) / 2) + (n - 1) / 2]! &= 0x0f;
  const ns = size(layout.scales.shape);
  const scales =
    format === "mxfp4"
      ? new Tensor(Uint8Array.from(rng.randint([ns], 118, 134).data), layout.scales.shape, "uint8")
      : new Tensor(Float32Array.from(rng.uniform([ns], 0.01, 0.03).data), layout.scales.shape, "float32");
  return [codes, scales];
}
