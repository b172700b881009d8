// Serve mode (QUANTIZATION.md): expert weights held quantized (int8 codes, int4 codes packed two per byte, or a
// checkpoint's FP8 / MXFP4 blocks, plus their scales) and grouped matmuls that read that storage directly
// (Prim.QuantizedGmm).
// Legend: G groups (experts), k contracting dim, n columns, m rows.
import { zeroed } from "../core/dtype.js";
import { MoeError, UnsupportedError } from "../core/errors.js";
import { size } from "../core/shape.js";
import { Tensor } from "../core/tensor.js";
import { bind1 } from "../autodiff/bind.js";
import { isRecording } from "../autodiff/graph.js";
import { Prim } from "../prims/prims.js";
import { TILE_BYTES, TILE_K, tileColumns, tiledCodes, weightLayout, type WeightFormat } from "../prims/quantized-gmm.js";
import { cast } from "./elementwise.js";
import { sliceAxis } from "./movement.js";
import { quantize } from "./quantize.js";

export type { WeightFormat };

/** A [G,k,n] weight in quantized storage (the layouts of prims/quantized-gmm.ts; int8 / int4 codes in rows or tiles). */
export interface QuantizedWeight {
  readonly format: WeightFormat;
  /** the logical [G,k,n] */
  readonly shape: readonly [number, number, number];
  readonly codes: Tensor;
  readonly scales: Tensor;
}

export const isQuantizedWeight = (w: unknown): w is QuantizedWeight =>
  typeof w === "object" && w !== null && !(w instanceof Tensor) && "codes" in w && "scales" in w;

/** Bits of a format's codes. */
export const formatBits = (f: WeightFormat): number => (f === "int8" || f === "fp8_e4m3" ? 8 : 4);

/** The formats moekit quantizes float weights into (fp8_e4m3 and mxfp4 are read from checkpoints). */
export const QUANTIZE_MODES = ["int8", "int4"] as const;
export type QuantizeMode = (typeof QUANTIZE_MODES)[number];

/** Refuses a mode other than QUANTIZE_MODES (a JavaScript caller's "INT8" or "int3"), naming `where`. */
export function checkQuantizeMode(mode: unknown, where: string): asserts mode is QuantizeMode {
  if (!QUANTIZE_MODES.includes(mode as QuantizeMode))
    throw new MoeError(
      `[${where}] quantization mode must be one of ${QUANTIZE_MODES.join(", ")}, got ${JSON.stringify(mode) ?? String(mode)}`,
    );
}

/**
 * Quantizes a float [G,k,n] weight for serving: AQT's symmetric abs-max rule per (group, column) over k, bound
 * Q = 2^(bits−1) − 0.5, clip to ±(Q − 0.5), round half to even (the `intmp` weight-only rule), scales float32;
 * codes in rows (servingWeights lays a layer's out for serving).
 */
export function quantizeWeight(w_GKN: Tensor, format: QuantizeMode): QuantizedWeight {
  checkQuantizeMode(format, "quantizeWeight");
  const [G, k, n] = w_GKN.shape as [number, number, number];
  const [v, s] = quantize(cast(w_GKN, "float32"), [1], { bits: formatBits(format), flavour: "aqt" });
  const layout = weightLayout(format, G, k, n);
  const values = v!.data;
  let codes: Int8Array | Uint8Array;
  // zeroed: large codes in huge pages (decode streams them)
  if (format === "int8") {
    codes = zeroed(Int8Array, values.length);
    codes.set(values);
  } else {
    codes = zeroed(Uint8Array, G * k * layout.codes.shape[2]!);
    const w = layout.codes.shape[2]!;
    for (let row = 0; row < G * k; row++)
      for (let j = 0; j < n; j++) codes[row * w + (j >> 1)]! |= (values[row * n + j]! & 0xf) << ((j & 1) * 4);
  }
  return { format, shape: [G, k, n], codes: new Tensor(codes, layout.codes.shape, layout.codes.dtype), scales: s! };
}

/** Bytes of one row of n int8 / int4 codes as checkpoints store them (int4: two per byte). */
const rowBytesOf = (format: WeightFormat, n: number): number => (format === "int8" ? n : Math.ceil(n / 2));

/**
 * Copies group g's rows of int8 / int4 codes (`rows`: that group's k rows only) to or from its tiles in `tiles`
 * (the whole weight's, zeroed before a copy into them).
 */
function moveGroupTiles(
  format: WeightFormat,
  [, k, n]: readonly [number, number, number],
  g: number,
  rows: Uint8Array,
  tiles: Uint8Array,
  toTiles: boolean,
): void {
  const rowBytes = rowBytesOf(format, n);
  const across = Math.ceil(n / tileColumns(format)),
    kt = Math.ceil(k / TILE_K);
  // 4 bytes at a time where every run is whole words (the layer's load time: 1-byte copies are ~4x slower)
  const unit = rowBytes % 4 === 0 && rows.byteOffset % 4 === 0 && tiles.byteOffset % 4 === 0 ? 4 : 1;
  const view = (a: Uint8Array): Uint8Array | Uint32Array => (unit === 4 ? new Uint32Array(a.buffer, a.byteOffset, a.byteLength >> 2) : a);
  const [src, dst] = toTiles ? [view(rows), view(tiles)] : [view(tiles), view(rows)];
  for (let p = 0; p < k; p++) {
    const r = p * rowBytes;
    for (let q = 0; q < across; q++) {
      const t = ((g * kt + Math.floor(p / TILE_K)) * across + q) * TILE_BYTES + (p % TILE_K) * 64;
      const [from, to] = toTiles ? [(r + q * 64) / unit, t / unit] : [t / unit, (r + q * 64) / unit];
      const len = Math.min(64, rowBytes - q * 64) / unit;
      for (let i = 0; i < len; i++) dst[to + i] = src[from + i]!;
    }
  }
}

/** Copies every row of the codes between the row and tile layouts of int8 / int4 codes (into a zeroed `tiles`). */
function moveTiles(w: QuantizedWeight, rows: Uint8Array, tiles: Uint8Array, toTiles: boolean): void {
  const [G, k, n] = w.shape;
  const groupBytes = k * rowBytesOf(w.format, n);
  for (let g = 0; g < G; g++) moveGroupTiles(w.format, w.shape, g, rows.subarray(g * groupBytes, (g + 1) * groupBytes), tiles, toTiles);
}

/**
 * An int8 / int4 weight [G,k,n] in tiles, its codes read group by group: `readRows(g, dst)` fills dst with group g's
 * rows (as checkpoints store them). Holds one group's rows at a time besides the tiles (a loaded layer's peak memory).
 */
export function tiledWeightFromRows(
  format: "int8" | "int4",
  shape: readonly [number, number, number],
  scales: Tensor,
  readRows: (g: number, dst: Uint8Array) => void,
): QuantizedWeight {
  const [G, k, n] = shape;
  const aval = weightLayout(format, G, k, n, true).codes;
  const codes = format === "int8" ? zeroed(Int8Array, size(aval.shape)) : zeroed(Uint8Array, size(aval.shape));
  const tiles = bytesOf(codes);
  const rows = new Uint8Array(k * rowBytesOf(format, n));
  for (let g = 0; g < G; g++) {
    readRows(g, rows);
    moveGroupTiles(format, shape, g, rows, tiles, true);
  }
  return { format, shape: [G, k, n], codes: new Tensor(codes, aval.shape, aval.dtype), scales };
}

const bytesOf = (a: Int8Array | Uint8Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** The weight with its int8 / int4 codes copied into the other layout (tiles, or rows). */
function relaid(w: QuantizedWeight, toTiles: boolean): QuantizedWeight {
  const aval = weightLayout(w.format, ...w.shape, toTiles).codes;
  const codes = w.format === "int8" ? zeroed(Int8Array, size(aval.shape)) : zeroed(Uint8Array, size(aval.shape));
  const [from, to] = [bytesOf(w.codes.data as Int8Array | Uint8Array), bytesOf(codes)];
  moveTiles(w, toTiles ? from : to, toTiles ? to : from, toTiles);
  return { ...w, codes: new Tensor(codes, aval.shape, aval.dtype) };
}

/**
 * The weight with int8 / int4 codes in tiles (prims/quantized-gmm.ts: the order the native decode streams read, the
 * serving layout); other formats, and codes in tiles already, as they are.
 */
export function tiledWeight(w: QuantizedWeight): QuantizedWeight {
  return (w.format !== "int8" && w.format !== "int4") || tiledCodes(w.codes) ? w : relaid(w, true);
}

/**
 * The layout serving holds a layer's quantized weights in (one for all: the fused FFN reads them alike): int8 / int4
 * codes in tiles where every weight's tiles add at most 1/32 to its bytes in padding (k to a multiple of 64, n of 64
 * or 128; model shapes: none), in rows otherwise; other formats as they are.
 */
export function servingWeights(ws: readonly QuantizedWeight[]): QuantizedWeight[] {
  return servedInTiles(ws) ? ws.map(tiledWeight) : ws.map(rowsWeight);
}

/** Whether serving holds weights of these formats and shapes in tiles (servingWeights' rule). */
export function servedInTiles(ws: readonly { format: WeightFormat; shape: readonly [number, number, number] }[]): boolean {
  return ws.every((w) => {
    if (w.format !== "int8" && w.format !== "int4") return false;
    const [rows, tiles] = [false, true].map((t) => size(weightLayout(w.format, ...w.shape, t).codes.shape)) as [number, number];
    return tiles * 32 <= rows * 33;
  });
}

/** The weight with its codes in rows (the layout checkpoints store); codes in rows already as they are. */
export function rowsWeight(w: QuantizedWeight): QuantizedWeight {
  return tiledCodes(w.codes) ? relaid(w, false) : w;
}

/** Groups [start, end) of a quantized weight (an expert-parallel rank's experts); shares nothing it need not copy. */
export function quantizedWeightSlice(w: QuantizedWeight, start: number, end: number): QuantizedWeight {
  return {
    format: w.format,
    shape: [end - start, w.shape[1], w.shape[2]],
    codes: sliceAxis(w.codes, 0, start, end),
    scales: sliceAxis(w.scales, 0, start, end),
  };
}

/** Bytes the quantized weights hold (codes and scales), and their logical element count. */
export function quantizedStorage(ws: readonly QuantizedWeight[]): { bytes: number; weights: number } {
  return {
    bytes: ws.reduce((a, w) => a + w.codes.data.byteLength + w.scales.data.byteLength, 0),
    weights: ws.reduce((a, w) => a + w.shape[0] * w.shape[1] * w.shape[2], 0),
  };
}

/**
 * gmm(lhs [m,k], w [G,k,n], groupSizes) read from quantized storage. Weight-only by default (lhs stays float); with
 * `lhsBits`, the rows are quantized at run time too (AQT, one scale per row over k) and multiplied as integers.
 * Inference only: refuses a differentiated lhs.
 */
export function quantizedWeightGmm(lhs: Tensor, w: QuantizedWeight, groupSizes: Tensor, lhsBits?: number): Tensor {
  if (isRecording() && lhs.node !== undefined)
    throw new UnsupportedError("[quantized_gmm] quantized (served) weights are for inference: differentiate the float layer");
  const params = { format: w.format, columns: w.shape[2] };
  if (lhsBits === undefined) return bind1(Prim.QuantizedGmm, [lhs, w.codes, w.scales, groupSizes], params);
  const [v, s] = quantize(lhs, [1], { bits: lhsBits, flavour: "aqt" });
  return cast(bind1(Prim.QuantizedGmm, [v, w.codes, w.scales, groupSizes, cast(s, "float32")], params), lhs.dtype);
}
