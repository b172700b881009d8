// Serve mode in checkpoints: a layer whose routed expert weights are held quantized (docs/quantization.md, "Serve
// mode"). In the MaxText layout each quantized weight <path> is two tensors, <path>/qvalue (int8 codes I8, or int4
// codes packed two per byte U8) and <path>/scale (F32 per (expert, column)), and the metadata key
// moekit.quantization says {"format", "bits", "paths"}; the layer's keys say how it runs (intmp weight-only, or
// int8 with activations quantized at run time).
import { MoeError } from "../core/errors.js";
import { fmt, shapesEqual, size } from "../core/shape.js";
import {
  formatBits,
  quantizeWeight,
  quantizedStorage,
  checkQuantizeMode,
  rowsWeight,
  servedInTiles,
  servingWeights,
  tiledWeightFromRows,
  type QuantizedWeight,
  type QuantizeMode,
  type WeightFormat,
} from "../ops/quantized-weight.js";
import { weightLayout, WEIGHT_FORMATS } from "../prims/quantized-gmm.js";
import type { Tensor } from "../core/tensor.js";
import { CheckpointLayoutError, ROUTED_PREFIX, makeLayer, type MoeLayer, type TensorSource } from "./layer.js";

export const QUANT_META = "moekit.quantization";

/** What moekit.quantization records. */
export interface LayerQuantization {
  format: WeightFormat;
  bits: number;
  /** module paths of the quantized weights */
  paths: string[];
}

export const quantizedTensorNames = (name: string): { codes: string; scales: string } => ({
  codes: `${name}/qvalue`,
  scales: `${name}/scale`,
});

/** The layer's keys for serving from `format`: intmp weight-only from a float layer; int8 and intmp kept when they agree. */
function servedKeys(layer: MoeLayer, format: QuantizeMode): Record<string, unknown> {
  const bits = formatBits(format);
  const cfg = layer.config;
  if (cfg.quantization === "int8" && bits !== 8)
    throw new MoeError(`[quantizeMoeLayer] an int8 layer quantizes its weights to 8 bits: mode ${format} needs a float or intmp layer`);
  const wBits = cfg.quantCfg?.__default__?.w_bits;
  if (cfg.quantization === "intmp" && wBits !== bits)
    throw new MoeError(
      `[quantizeMoeLayer] the layer's intmp w_bits is ${String(wBits)}: mode ${format} would store other weights than it computes`,
    );
  if (cfg.quantization !== "") return layer.keys;
  return { ...layer.keys, quantization: "intmp", quant_cfg: { __default__: { w_bits: bits } } };
}

/**
 * The layer with its routed experts' wi_0, wi_1 and wo held quantized in `format` (AQT weight-only per (expert,
 * column), float32 scales); gate, biases and shared MLP keep their storage. The layer keeps the overrides it was
 * read with; `overrides` adds to them.
 */
export function quantizeMoeLayer(layer: MoeLayer, format: QuantizeMode, overrides: Record<string, unknown> = {}): MoeLayer {
  checkQuantizeMode(format, "quantizeMoeLayer");
  if (layer.quantized !== undefined) {
    const held = [...new Set(Object.values(layer.quantized).map((q) => q.format))].join(", ");
    throw new MoeError(`[quantizeMoeLayer] the layer is quantized already (its experts are held as ${held})`);
  }
  if (layer.config.decoderBlock === "gemma4")
    throw new MoeError("gemma4's per_expert_scale is folded into wo at run time: not served quantized");
  const keys = servedKeys(layer, format);
  const params = { ...layer.params };
  const storage = { ...layer.storage };
  const quantized: Record<string, QuantizedWeight> = {};
  for (const w of ["wi_0", "wi_1", "wo"]) {
    const p = ROUTED_PREFIX[layer.module] + w;
    quantized[p] = quantizeWeight(params[p]!, format);
    delete params[p];
    delete storage[p];
  }
  servedLayout(quantized);
  const { config: _config, ...fields } = layer;
  return makeLayer({ ...fields, keys, params, storage, quantized }, overrides);
}

/** A layer's quantized weights laid out for serving, in place (servingWeights). */
export function servedLayout(quantized: Record<string, QuantizedWeight>): void {
  const paths = Object.keys(quantized);
  servingWeights(paths.map((p) => quantized[p]!)).forEach((w, i) => (quantized[paths[i]!] = w));
}

/** The tensors a quantized layer writes (besides its params), and its metadata entry. */
export function quantizedTensors(layer: MoeLayer, prefix: string): { tensors: Record<string, Tensor>; meta: Record<string, string> } {
  const tensors: Record<string, Tensor> = {};
  const q = Object.entries(layer.quantized ?? {});
  if (q.length === 0) return { tensors, meta: {} };
  for (const [p, w] of q) {
    const n = quantizedTensorNames(`${prefix}/${p}`);
    tensors[n.codes] = rowsWeight(w).codes; // checkpoints hold rows; serving, tiles
    tensors[n.scales] = w.scales;
  }
  const format = q[0]![1].format;
  const info: LayerQuantization = { format, bits: formatBits(format), paths: q.map(([p]) => p) };
  return { tensors, meta: { [QUANT_META]: JSON.stringify(info) } };
}

/** Parses moekit.quantization (undefined: the layer is float). */
export function parseLayerQuantization(text: string | undefined, source: string): LayerQuantization | undefined {
  if (text === undefined) return undefined;
  let q: Partial<LayerQuantization>;
  try {
    q = JSON.parse(text) as Partial<LayerQuantization>;
  } catch (e) {
    throw new CheckpointLayoutError(source, `metadata ${QUANT_META} is not valid JSON (${(e as Error).message})`);
  }
  if (!WEIGHT_FORMATS.includes(q.format as WeightFormat) || !Array.isArray(q.paths) || q.bits !== formatBits(q.format!))
    throw new CheckpointLayoutError(
      source,
      `metadata ${QUANT_META}=${text}: expected {"format": ${WEIGHT_FORMATS.join("|")}, "bits", "paths"}`,
    );
  return q as LayerQuantization;
}

/**
 * A layer's quantized weights (`paths`, each [G,k,n] or a [k,n] kernel as one group) read from `src` and laid out for
 * serving (servingWeights): int8 / int4 codes that serving holds in tiles are read group by group straight into them,
 * so that loading holds one group's rows besides the tiles (not a second copy of every weight).
 */
export function readQuantizedWeights(
  src: TensorSource,
  prefix: string,
  paths: readonly string[],
  format: WeightFormat,
  shapes: Readonly<Record<string, readonly number[]>>,
  source: string,
): Record<string, QuantizedWeight> {
  const dims = (p: string): [number, number, number] => {
    const s = shapes[p]!;
    return (s.length === 2 ? [1, ...s] : s) as [number, number, number];
  };
  const tiles = servedInTiles(paths.map((p) => ({ format, shape: dims(p) })));
  const quantized: Record<string, QuantizedWeight> = {};
  for (const p of paths) {
    const [G, k, n] = dims(p);
    const want = weightLayout(format, G, k, n);
    const names = quantizedTensorNames(`${prefix}/${p}`);
    for (const [t, aval] of [
      [names.codes, want.codes],
      [names.scales, want.scales],
    ] as const) {
      if (!src.has(t)) throw new CheckpointLayoutError(source, `missing tensor ${t} ${aval.dtype}${fmt(aval.shape)} (${format} weight)`);
      const info = src.info(t);
      if (!shapesEqual(info.shape, aval.shape))
        throw new CheckpointLayoutError(source, `tensor ${t} has shape ${fmt(info.shape)}, expected ${fmt(aval.shape)}`);
    }
    const scales = src.get(names.scales, { dtype: want.scales.dtype });
    const bytewise = ["I8", "U8"].includes(src.info(names.codes).dtype);
    if (tiles && (format === "int8" || format === "int4") && bytewise && src.readBytes !== undefined) {
      const groupBytes = size(want.codes.shape) / G;
      quantized[p] = tiledWeightFromRows(format, [G, k, n], scales, (g, dst) => src.readBytes!(names.codes, g * groupBytes, dst));
    } else quantized[p] = { format, shape: [G, k, n], codes: src.get(names.codes, { dtype: want.codes.dtype }), scales };
  }
  servedLayout(quantized);
  return quantized;
}

/** Element count of the layer's weights, float and quantized. */
export function layerParameterCount(layer: MoeLayer): number {
  return Object.values(layer.params).reduce((a, t) => a + t.size, 0) + quantizedStorage(Object.values(layer.quantized ?? {})).weights;
}
