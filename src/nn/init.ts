// MaxText initialisers (layers/initializers.py): variance scaling with explicit in/out axes.
import { ConfigError } from "../core/errors.js";
import { bf16BitsRef, type DType } from "../core/dtype.js";
import { full, Tensor } from "../core/tensor.js";
import { normal, truncatedNormal, uniform, type Key } from "./random.js";

export type FanMode = "fan_in" | "fan_out" | "fan_avg";
export type Distribution = "truncated_normal" | "normal" | "uniform";

/** init(key, shape, dtype, inAxis, outAxis) -> Tensor (MaxText NdInitializer). */
export type NdInitializer = (
  key: Key,
  shape: readonly number[],
  dtype: DType,
  inAxis: readonly number[],
  outAxis: readonly number[],
) => Tensor;

/** Fans as JAX computes them: receptive field = the axes in neither inAxis nor outAxis. */
export function computeFans(
  shape: readonly number[],
  inAxis: readonly number[],
  outAxis: readonly number[],
): { fanIn: number; fanOut: number } {
  const prod = (axes: readonly number[]): number => axes.reduce((a, i) => a * shape[i < 0 ? i + shape.length : i]!, 1);
  const inSize = prod(inAxis);
  const outSize = prod(outAxis);
  const total = shape.reduce((a, d) => a * d, 1);
  const rf = total / (inSize * outSize);
  return { fanIn: inSize * rf, fanOut: outSize * rf };
}

/** jax.nn.initializers.variance_scaling; the truncated normal is rescaled by 1/0.8796 as in JAX. */
export function ndDenseInit(scale: number, mode: FanMode, distribution: Distribution): NdInitializer {
  return (key, shape, dtype, inAxis, outAxis) => {
    const { fanIn, fanOut } = computeFans(shape, inAxis, outAxis);
    const fan = mode === "fan_in" ? fanIn : mode === "fan_out" ? fanOut : (fanIn + fanOut) / 2;
    const variance = scale / Math.max(1, fan);
    let t: Tensor;
    switch (distribution) {
      case "truncated_normal": {
        t = truncatedNormal(key, shape, -2, 2, "float64");
        const s = Math.sqrt(variance) / 0.8796256610342398;
        t = mapScale(t, s, dtype);
        break;
      }
      case "normal":
        t = mapScale(normal(key, shape, "float64"), Math.sqrt(variance), dtype);
        break;
      case "uniform":
        t = mapScale(uniform(key, shape, -1, 1, "float64"), Math.sqrt(3 * variance), dtype);
        break;
      default:
        throw new ConfigError("distribution", distribution, "must be truncated_normal, normal or uniform");
    }
    return t;
  };
}

/** t * s in `dtype`; bfloat16 results are kept as their bits (2 bytes per weight; the values round through float32). */
function mapScale(t: Tensor, s: number, dtype: DType): Tensor {
  const out = full(t.shape, 0, dtype === "bfloat16" ? "float32" : dtype);
  const src = t.data;
  const dst = out.data;
  for (let i = 0; i < src.length; i++) dst[i] = src[i]! * s;
  return dtype === "bfloat16" ? new Tensor(bf16BitsRef(dst as Float32Array), t.shape, "bfloat16") : out;
}

/** The decoders' default: nd_dense_init(1.0, "fan_in", "truncated_normal"). */
export const defaultKernelInit: NdInitializer = ndDenseInit(1.0, "fan_in", "truncated_normal");
