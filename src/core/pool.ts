// Recycled storage (float32, or whole int32 buffers seen as float32) for the large buffers of the native kernels:
// a training step's residuals, and the gradients that a caller hands back with recycle(). Fresh 100 MB+ arrays cost
// their page faults (the kernel zeroes every page on first touch) on every step; recycled ones are already mapped.
// Only whole buffers of at least MIN_BYTES are kept, up to a byte budget; the rest is left to the GC.
import { Tensor } from "./tensor.js";

const MIN_BYTES = 1 << 20;

/**
 * Where take() gets a buffer the pool lacks: the native backend's mapped blocks, which return to its own free list when
 * V8 frees their arrays (native/napi/pooled.cpp), so that a training loop that never calls recycle() still writes its
 * gradients into pages already mapped. Contents are arbitrary, as with recycled buffers.
 */
export interface FreshStorage {
  take(n: number): Float32Array;
  setMaxBytes(bytes: number): void;
  /** Gives the free blocks back to the OS. */
  trim(): void;
}

export class StoragePool {
  readonly #free = new Map<number, Float32Array[]>();
  #bytes = 0;
  #fresh: FreshStorage | undefined;

  constructor(public maxBytes: number) {}

  /** Large buffers that the pool lacks come from `src` from now on (undefined: new Float32Arrays). */
  useFreshStorage(src: FreshStorage | undefined): void {
    this.#fresh = src;
    src?.setMaxBytes(this.maxBytes);
  }

  /** A Float32Array of length n: a recycled one (old contents: callers overwrite every element) or a fresh one. */
  take(n: number): Float32Array {
    const buf = this.#free.get(n)?.pop();
    if (buf === undefined) return this.#fresh !== undefined && n * 4 >= MIN_BYTES ? this.#fresh.take(n) : new Float32Array(n);
    this.#bytes -= buf.byteLength;
    return buf;
  }

  /** Keep `buf` for a later take(); a no-op for small, partial (views) or over-budget buffers. */
  give(buf: Float32Array): void {
    if (buf.byteLength < MIN_BYTES || buf.byteOffset !== 0 || buf.byteLength !== buf.buffer.byteLength) return;
    if (this.#bytes + buf.byteLength > this.maxBytes) return;
    const list = this.#free.get(buf.length) ?? [];
    if (list.includes(buf)) return;
    list.push(buf);
    this.#free.set(buf.length, list);
    this.#bytes += buf.byteLength;
  }

  /** Bytes held for reuse. */
  get bytes(): number {
    return this.#bytes;
  }

  clear(): void {
    this.#free.clear();
    this.#bytes = 0;
    this.#fresh?.trim();
  }

  /** A new budget (for the fresh storage's free blocks too); what the pool holds beyond it is dropped. */
  setMaxBytes(bytes: number): void {
    this.maxBytes = bytes;
    this.#fresh?.setMaxBytes(bytes);
    if (this.#bytes > bytes) this.clear();
  }
}

/** The pool the native kernels draw their large outputs from (2 GiB; MOEKIT_POOL_MB sets it: core/env.ts, backends/select.ts). */
export const storagePool = new StoragePool(2 * 2 ** 30);

/**
 * Hands the storage of tensors you are done with back to moekit, so that the native kernels reuse it for their
 * next large outputs (a training loop: recycle the gradients once the optimizer has applied them). The tensors,
 * and any tensor sharing their storage (a reshape of them), throw a MoeError when used afterwards, and so does
 * recycling them again. Small storage, and anything past the pool's budget, is left to the GC.
 */
export function recycle(...tensors: readonly (Tensor | readonly (Tensor | undefined)[] | undefined)[]): void {
  const given = tensors.flat().filter((t): t is Tensor => t !== undefined);
  for (const a of Tensor.release(given)) storagePool.give(a);
}

/** Frees what recycle() and the training steps left in the pool (the GC takes it from here). */
export function releaseRecycled(): void {
  storagePool.clear();
}

/** Bytes the pool holds for reuse. */
export function recycledBytes(): number {
  return storagePool.bytes;
}
