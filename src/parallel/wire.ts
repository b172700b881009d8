// Tensors across thread boundaries: plain records that structured clone carries (data is copied).
import { parseDType, type TypedArray } from "../core/dtype.js";
import { MoeError } from "../core/errors.js";
import { storagePool } from "../core/pool.js";
import { Tensor } from "../core/tensor.js";

interface WireTensor {
  __moekitTensor: true;
  /** bf16 bit patterns for a bits-backed bfloat16 tensor */
  data: TypedArray | Uint16Array;
  shape: number[];
  dtype: string;
}

const isWire = (v: unknown): v is WireTensor => typeof v === "object" && v !== null && (v as WireTensor).__moekitTensor === true;

/** Replace every Tensor in a value (arrays and plain objects, recursively) by its wire form. */
export function encode(v: unknown): unknown {
  if (v instanceof Tensor)
    return { __moekitTensor: true, data: v.bf16Bits ?? v.data, shape: [...v.shape], dtype: v.dtype } satisfies WireTensor;
  if (Array.isArray(v)) return v.map(encode);
  if (typeof v === "object" && v !== null && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, encode(x)]));
  }
  return v;
}

/**
 * `t`'s wire form on storage of its own, with that storage to transfer (postMessage's transfer list): one copy, where
 * structured clone makes two and carries a view's whole buffer. float32 storage comes from the storage pool (large
 * ones from its mapped blocks, which the receiver's GC returns to the process-wide free list).
 */
export function encodeOwned(t: Tensor): [WireTensor, ArrayBuffer] {
  const src = t.bf16Bits ?? t.data;
  const C = src.constructor as new (n: number) => TypedArray | Uint16Array;
  const copy = src instanceof Float32Array ? storagePool.take(src.length) : new C(src.length);
  copy.set(src);
  return [{ __moekitTensor: true, data: copy, shape: [...t.shape], dtype: t.dtype }, copy.buffer as ArrayBuffer];
}

/** Inverse of encode. */
export function decode(v: unknown): unknown {
  if (isWire(v)) {
    const dt = parseDType(v.dtype);
    if (dt === undefined) throw new MoeError(`[wire] unknown dtype ${v.dtype}`);
    return new Tensor(v.data, v.shape, dt);
  }
  if (Array.isArray(v)) return v.map(decode);
  if (typeof v === "object" && v !== null && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, decode(x)]));
  }
  return v;
}
