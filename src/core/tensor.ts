import { allocate, bf16BitsRef, bf16BitsToF32, roundBf16InPlace, zeroed, type DType, type TypedArray } from "./dtype.js";
import { firstUnfit, storageOf } from "./dtype.js";
import { DTypeError, MoeError, ShapeError } from "./errors.js";
import { checkShape, flattenNested, fmt, size, type NestedNumbers, type Shape } from "./shape.js";

/**
 * A node of the reverse-mode graph: made by an op whose inputs are tracked. `vjp` maps the cotangents
 * of the node's outputs to those of its parents (undefined = zero / not differentiable).
 */
export interface GradNode {
  readonly id: number;
  readonly parents: readonly Tensor[];
  readonly numOutputs: number;
  /** Collective nodes run their VJP on every rank even without a cotangent, so ranks stay in step. */
  readonly collective: boolean;
  readonly leaf: boolean;
  vjp(cts: readonly (Tensor | undefined)[]): (Tensor | undefined)[] | Promise<(Tensor | undefined)[]>;
}

let nextNodeId = 0;
export function newNodeId(): number {
  return nextNodeId++;
}

// The one cache of a bfloat16 tensor's other storage form, keyed by the storage array so that every tensor over
// the same storage (autodiff leaves, reshapes) shares it: the float32 values of bit-pattern storage, and the bit
// patterns of float32 storage. Tensors are immutable except through the in-place primitives, whose ops call
// Tensor.rewritten, and recycle(), which releases the storage.
const widenedBits = new WeakMap<Uint16Array, Float32Array>();
const narrowedValues = new WeakMap<Float32Array, Uint16Array>();

function widened(bits: Uint16Array): Float32Array {
  let d = widenedBits.get(bits);
  if (d === undefined) {
    d = bf16BitsToF32(bits);
    widenedBits.set(bits, d);
  }
  return d;
}

// recycle() releases storage arrays: tensors made over one before its release throw on use; tensors made after
// it (the pool hands the array out again) own it. Each release or in-place rewrite of storage (release, rewritten)
// counts one write, and each array keeps the count at its last; a tensor rechecks only after a write since its last
// check.
let nextSerial = 0;
const releasedBefore = new WeakMap<TypedArray | Uint16Array, number>();
let writes = 0;
const writtenAt = new WeakMap<TypedArray | Uint16Array, number>();

// One write of these arrays: what was derived from them (their bf16 bits) is forgotten.
function written(storage: Iterable<TypedArray | Uint16Array>): void {
  writes++;
  for (const a of storage) {
    writtenAt.set(a, writes);
    if (a instanceof Float32Array) narrowedValues.delete(a);
  }
}

/** Converts float32 values (already bf16-valued) to bf16 bit patterns; a backend may pass a faster one. */
export type Bf16Narrowing = (values: Float32Array, bits: Uint16Array) => void;

/** What jit's capture (backends/jit.ts) watches: every read of values, and the checks each replay must repeat. */
export interface ValueWatcher {
  read(t: Tensor): void;
  check(values: readonly Tensor[], check: (values: readonly Tensor[]) => void): void;
}
let watcher: ValueWatcher | undefined;
export function watchValues(w: ValueWatcher | undefined): void {
  watcher = w;
}

/** Run `check` on `values` (it may read them, and must not compute what the caller uses), on every jit replay too. */
export function checkValues(values: readonly Tensor[], check: (values: readonly Tensor[]) => void): void {
  if (watcher !== undefined) watcher.check(values, check);
  else check(values);
}

const narrowRef: Bf16Narrowing = (values, bits) => bits.set(bf16BitsRef(values));

/**
 * A dense row-major array. Storage is a typed array (host memory, or native memory exposed as an
 * ArrayBuffer), never copied by views of the same data. A bfloat16 tensor may instead be backed by its bf16 bit
 * patterns (a Uint16Array, 2 bytes per element, as in a checkpoint): the native kernels read those directly, and
 * `data` widens them to float32 only when something first reads it.
 */
export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly size: number;
  #data: TypedArray | undefined;
  readonly #bits: Uint16Array | undefined;
  node: GradNode | undefined;
  outIndex = 0;
  readonly #serial = nextSerial++;
  #checkedAt = writes;

  /** `data`: the dtype's storage (Float32Array for float32 / bfloat16), or bf16 bit patterns for bfloat16. */
  constructor(data: TypedArray | Uint16Array, shape: Shape, dtype: DType) {
    if (data.length !== size(shape)) {
      throw new ShapeError(`[tensor] ${data.length} elements do not fill shape ${fmt(shape)}`);
    }
    if (data instanceof Uint16Array) {
      if (dtype !== "bfloat16")
        throw new DTypeError(`[tensor] a Uint16Array holds bf16 bit patterns: dtype must be bfloat16, got ${dtype}`);
      this.#bits = data;
    } else {
      if (!(data instanceof storageOf(dtype)))
        throw new DTypeError(`[tensor] dtype ${dtype} is stored in ${storageOf(dtype).name}, got ${data.constructor.name}`);
      this.#data = data;
    }
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = data.length;
  }

  /**
   * The elements (float32 for bfloat16); a bits-backed bfloat16 tensor widens its bits on the first read. After
   * writing into it, call `Tensor.rewritten([t])`, so that what was derived from the old values (bf16 bits, jit
   * constants) follows.
   */
  get data(): TypedArray {
    watcher?.read(this);
    if (this.#checkedAt !== writes) this.#checkLive();
    return this.#data ?? (this.#data = widened(this.#bits!));
  }

  /** The bf16 bit patterns behind a bits-backed bfloat16 tensor; undefined for every other tensor. */
  get bf16Bits(): Uint16Array | undefined {
    watcher?.read(this);
    if (this.#checkedAt !== writes) this.#checkLive();
    return this.#bits;
  }

  #checkLive(): void {
    if (this.released) throw new MoeError(`[recycle] ${this.toString()} used after recycle()`);
    this.#checkedAt = writes;
  }

  /**
   * Releases the storage of `tensors` (recycle() does): they, and every tensor made over the same storage until
   * now, throw on use. Throws, releasing nothing, when one was released already. Returns the float32 arrays
   * that may be reused.
   */
  static release(tensors: readonly Tensor[]): Float32Array[] {
    for (const t of tensors) t.#checkLive();
    const storage = new Set(tensors.map((t) => t.#bits ?? t.#data!));
    for (const a of storage) releasedBefore.set(a, nextSerial);
    written(storage);
    // a bits-backed tensor's float32 data is a widened copy shared by every tensor over the same bits: never reused;
    // a whole int32 buffer (quantized values) serves the pool as float32 storage
    const s = [...storage].map((a) => (a instanceof Int32Array && a.byteLength === a.buffer.byteLength ? new Float32Array(a.buffer) : a));
    return s.filter((a): a is Float32Array => a instanceof Float32Array);
  }

  /** Whether recycle() has released this tensor's storage (a use throws). */
  get released(): boolean {
    return this.#serial < (releasedBefore.get(this.#bits ?? this.#data!) ?? -Infinity);
  }

  /**
   * Their storage was rewritten in place (the optimizer steps, or a write to `data`): forget what was derived from
   * it. A bfloat16 tensor's new values are rounded to bfloat16, into its bits where it has them.
   */
  static rewritten(tensors: readonly Tensor[]): void {
    for (const t of tensors) {
      const values = t.#bits === undefined ? t.#data : widenedBits.get(t.#bits);
      if (t.dtype === "bfloat16" && values !== undefined) roundBf16InPlace(values as Float32Array);
      if (t.#bits !== undefined && values !== undefined) t.#bits.set(bf16BitsRef(values as Float32Array));
    }
    written(tensors.map((t) => t.storage));
  }

  /** Changes whenever `storage` is rewritten in place (rewritten) or released (release). */
  static lastWrite(storage: TypedArray | Uint16Array): number {
    return writtenAt.get(storage) ?? 0;
  }

  /** A bfloat16 tensor's bit patterns: its storage, or made once per float32 storage array (cached). */
  bf16BitsOf(narrow: Bf16Narrowing = narrowRef): Uint16Array {
    watcher?.read(this);
    if (this.#checkedAt !== writes) this.#checkLive();
    if (this.dtype !== "bfloat16") throw new DTypeError(`[tensor] bf16 bits of a ${this.dtype} tensor`);
    if (this.#bits !== undefined) return this.#bits;
    const values = this.#data as Float32Array;
    let bits = narrowedValues.get(values);
    if (bits === undefined) {
      bits = zeroed(Uint16Array, values.length); // large: huge pages (decode streams these bits)
      narrow(values, bits);
      narrowedValues.set(values, bits);
    }
    return bits;
  }

  /** False only for a bits-backed tensor whose float32 `data` has not been made (yet). */
  get materialized(): boolean {
    return this.#data !== undefined || widenedBits.has(this.#bits!);
  }

  /** The array behind the tensor (its bits for a bits-backed bfloat16 one), for identity only: no read is watched. */
  get storage(): TypedArray | Uint16Array {
    return this.#bits ?? this.#data!;
  }

  /** A new tensor object (no graph node) over the same storage; bf16 bits stay as they are. */
  sameStorage(): Tensor {
    if (this.#checkedAt !== writes) this.#checkLive();
    return new Tensor(this.#bits ?? this.#data!, this.shape, this.dtype);
  }

  get ndim(): number {
    return this.shape.length;
  }

  /** Scalar value of a one-element tensor. */
  item(): number {
    if (this.data.length !== 1) throw new ShapeError(`[item] tensor of shape ${fmt(this.shape)} is not a scalar`);
    return this.data[0]!;
  }

  /** Plain copy of the elements, row-major. */
  toArray(): number[] {
    return Array.from(this.data);
  }

  /** Nested JS arrays in the tensor's shape. */
  toNested(): unknown {
    const rec = (dim: number, off: number): unknown => {
      if (dim === this.shape.length) return this.data[off];
      const stride = size(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim]! }, (_, i) => rec(dim + 1, off + i * stride));
    };
    return rec(0, 0);
  }

  toString(): string {
    return `Tensor(${this.dtype}${fmt(this.shape)})`;
  }
}

/**
 * Build a tensor from numbers (copied, converted to `dtype`): a number, a typed array, or nested arrays, which
 * must be rectangular (their shape is the default `shape`).
 */
export function tensor(values: ArrayLike<number> | NestedNumbers, shape?: Shape, dtype: DType = "float32"): Tensor {
  const nested = typeof values === "number" || Array.isArray(values) ? flattenNested(values as NestedNumbers) : undefined;
  const arr: ArrayLike<number> = nested?.flat ?? (values as ArrayLike<number>);
  const shp = shape ?? nested?.shape ?? [arr.length];
  checkShape(shp, "tensor");
  const data = allocate(dtype, arr.length);
  const bad = firstUnfit(dtype, arr);
  if (bad >= 0) throw new DTypeError(`[tensor] ${dtype} cannot hold ${arr[bad]} (element ${bad})`);
  for (let i = 0; i < arr.length; i++) data[i] = arr[i]!;
  if (dtype === "bfloat16") roundBf16InPlace(data as Float32Array);
  return new Tensor(data, shp, dtype);
}

export function zerosLike(t: { shape: Shape; dtype: DType }): Tensor {
  return new Tensor(allocate(t.dtype, size(t.shape)), t.shape, t.dtype);
}

export function zeros(shape: Shape, dtype: DType = "float32"): Tensor {
  return new Tensor(allocate(dtype, size(shape)), shape, dtype);
}

export function full(shape: Shape, value: number, dtype: DType = "float32"): Tensor {
  if (firstUnfit(dtype, [value]) >= 0) throw new DTypeError(`[full] ${dtype} cannot hold ${value}`);
  const t = zeros(shape, dtype);
  t.data.fill(value);
  if (dtype === "bfloat16") roundBf16InPlace(t.data as Float32Array);
  return t;
}
