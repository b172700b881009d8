// Optimizers that update float32 parameters in place (the storage of the Tensors you pass): AdamW (optax's adamw
// update order) and SGD with an optional momentum trace, each step one AdamwStep / SgdStep primitive per
// parameter (prims/optim-steps.ts states the float32 operation order every backend follows bit for bit).
// Gradients are consumed as they are: recycle() them after step().
import { MoeError } from "../core/errors.js";
import { shapesEqual } from "../core/shape.js";
import { checkOptionKeys, optionKeys } from "../core/suggest.js";
import { Tensor } from "../core/tensor.js";
import { adamwStep, sgdStep } from "../ops/optim-steps.js";
import { cast, mul } from "../ops/elementwise.js";
import { reshape } from "../ops/movement.js";

function checkedParams(name: string, params: readonly Tensor[]): Float32Array[] {
  const data = params.map((p, i) => {
    if (p.dtype !== "float32" || !(p.data instanceof Float32Array)) {
      throw new MoeError(
        `[${name}] parameter ${i} is ${p.dtype}: the optimizers update float32 parameters (keep float32 master weights and cast them for the forward)`,
      );
    }
    return p.data;
  });
  data.forEach((a, i) => {
    for (let j = 0; j < i; j++) {
      const b = data[j]!;
      if (a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength) {
        throw new MoeError(`[${name}] parameter ${i} shares storage with parameter ${j}: it would be updated twice`);
      }
    }
  });
  return data;
}

function checkedGrads(
  name: string,
  params: readonly Float32Array[],
  shapes: readonly (readonly number[])[],
  grads: readonly (Tensor | undefined)[],
): (Tensor | undefined)[] {
  if (grads.length !== params.length) throw new MoeError(`[${name}] step() got ${grads.length} gradients for ${params.length} parameters`);
  return grads.map((g, i) => {
    if (g === undefined) return undefined;
    if (!shapesEqual(g.shape, shapes[i]!))
      throw new MoeError(`[${name}] gradient ${i} has shape [${g.shape.join(", ")}], parameter ${i} has [${shapes[i]!.join(", ")}]`);
    // ops, not reads of g's values, so that a step runs under jit; a gradient over a parameter's storage (a parameter
    // given as a gradient) is copied first, since the steps write the parameters
    const flatG = reshape(cast(g, "float32"), [params[i]!.length]);
    return params.some((p) => overlaps(p, g.storage)) ? mul(flatG, 1) : flatG;
  });
}

const overlaps = (a: ArrayBufferView, b: ArrayBufferView): boolean =>
  a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;

function positive(name: string, key: string, v: number, orZero = false): number {
  if (!Number.isFinite(v) || v < 0 || (!orZero && v === 0))
    throw new MoeError(
      `[${name}] ${key} must be a finite number ${orZero ? ">= 0" : "> 0"}, got ${typeof v === "number" ? v : `${JSON.stringify(v)} (${typeof v})`}`,
    );
  return v;
}

export interface AdamWOptions {
  learningRate: number;
  /** default 0.9 */
  b1?: number;
  /** default 0.999 */
  b2?: number;
  /** default 1e-8 */
  eps?: number;
  /** decoupled weight decay, default 1e-4 (optax's adamw default) */
  weightDecay?: number;
}

/**
 * AdamW over `params`, in place: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g², p -= lr ((m/bc1) / (sqrt(v/bc2) + eps) + wd p)
 * with bc = 1 - b^t, t the parameter's own step count (optax.adamw). A gradient left undefined skips its parameter
 * (its moments and step stay).
 */
export class AdamW {
  readonly #p: Float32Array[];
  readonly #shapes: (readonly number[])[];
  readonly #m: Float32Array[];
  readonly #v: Float32Array[];
  #t = 0;
  // each parameter's own step count: a skipped one keeps its moments and its bias correction
  readonly #ts: number[];
  readonly lr: number;
  readonly b1: number;
  readonly b2: number;
  readonly eps: number;
  readonly weightDecay: number;

  constructor(params: readonly Tensor[], opts: AdamWOptions) {
    checkOptionKeys(opts, optionKeys<AdamWOptions>({ learningRate: true, b1: true, b2: true, eps: true, weightDecay: true }), "adamw");
    this.#p = checkedParams("adamw", params);
    this.#shapes = params.map((p) => [...p.shape]);
    this.#m = this.#p.map((p) => new Float32Array(p.length));
    this.#v = this.#p.map((p) => new Float32Array(p.length));
    this.#ts = this.#p.map(() => 0);
    this.lr = positive("adamw", "learningRate", opts.learningRate);
    this.b1 = opts.b1 ?? 0.9;
    this.b2 = opts.b2 ?? 0.999;
    for (const [k, b] of [
      ["b1", this.b1],
      ["b2", this.b2],
    ] as const) {
      if (!(b >= 0 && b < 1)) throw new MoeError(`[adamw] ${k} must be in [0, 1), got ${b}`);
    }
    this.eps = positive("adamw", "eps", opts.eps ?? 1e-8);
    this.weightDecay = positive("adamw", "weightDecay", opts.weightDecay ?? 1e-4, true);
  }

  /** Steps taken (calls of step). */
  get steps(): number {
    return this.#t;
  }

  /** One update of every parameter from its gradient. */
  step(grads: readonly (Tensor | undefined)[]): void {
    const gs = checkedGrads("adamw", this.#p, this.#shapes, grads);
    this.#t++;
    gs.forEach((g, i) => {
      if (g === undefined) return;
      const t = ++this.#ts[i]!;
      // the per-step scalars (the kernels round each to float32)
      const params = {
        lr: this.lr,
        b1: this.b1,
        omb1: 1 - this.b1,
        b2: this.b2,
        omb2: 1 - this.b2,
        bc1: 1 - this.b1 ** t,
        bc2: 1 - this.b2 ** t,
        eps: this.eps,
        weightDecay: this.weightDecay,
      };
      adamwStep(flat(this.#p[i]!), g, flat(this.#m[i]!), flat(this.#v[i]!), params);
    });
  }
}

const flat = (a: Float32Array): Tensor => new Tensor(a, [a.length], "float32");

export interface SgdOptions {
  learningRate: number;
  /** momentum trace factor (optax.sgd's), default 0: plain SGD */
  momentum?: number;
}

/** SGD over `params`, in place: d = g (or d = momentum·trace + g, trace = d), p -= lr d. */
export class SGD {
  readonly #p: Float32Array[];
  readonly #shapes: (readonly number[])[];
  readonly #trace: (Float32Array | null)[];
  readonly lr: number;
  readonly momentum: number;

  constructor(params: readonly Tensor[], opts: SgdOptions) {
    checkOptionKeys(opts, optionKeys<SgdOptions>({ learningRate: true, momentum: true }), "sgd");
    this.#p = checkedParams("sgd", params);
    this.#shapes = params.map((p) => [...p.shape]);
    this.lr = positive("sgd", "learningRate", opts.learningRate);
    this.momentum = positive("sgd", "momentum", opts.momentum ?? 0, true);
    this.#trace = this.#p.map((p) => (this.momentum > 0 ? new Float32Array(p.length) : null));
  }

  step(grads: readonly (Tensor | undefined)[]): void {
    const gs = checkedGrads("sgd", this.#p, this.#shapes, grads);
    gs.forEach((g, i) => {
      if (g === undefined) return;
      const trace = this.#trace[i];
      sgdStep(flat(this.#p[i]!), g, trace === null ? undefined : flat(trace!), { lr: this.lr, momentum: this.momentum });
    });
  }
}
