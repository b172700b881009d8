// Recycled float32 storage for the large buffers of the native kernels: a training step's residuals, and the
// gradients that a caller hands back with recycle(). Fresh 100 MB+ arrays cost their page faults (the kernel zeroes
// every page on first touch) on every step; recycled ones are already mapped. Only whole buffers of at least
// MIN_BYTES are kept, up to a byte budget; the rest is left to the GC.
import { Tensor } from "./tensor.js";

const MIN_BYTES = 1 << 20;

export class StoragePool {
  readonly #free = new Map<number, Float32Array[]>();
  #bytes = 0;

  constructor(public maxBytes: number) {}

  /** A Float32Array of length n: a recycled one (old contents: callers overwrite every element) or a fresh one. */
  take(n: number): Float32Array {
    const buf = this.#free.get(n)?.pop();
    if (buf === undefined) return new Float32Array(n);
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
  }

  /** A new budget; what the pool holds beyond it is dropped. */
  setMaxBytes(bytes: number): void {
    this.maxBytes = bytes;
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
