// jit: the first call of a function of tensors runs it as usual while recording every primitive it dispatches (the
// kernel's backend, params and output avals, and where each input came from); later calls with arguments of the same
// shapes and dtypes replay that record: the same kernels in the same order, without the JavaScript between them (shape
// rules, config logic, wrappers). What makes a record replayable is checked while it is made: JavaScript that reads
// the values of an argument or of anything computed from one (a branch on data) makes jit throw, naming the place;
// value checks that must run every call go through checkValues, which records them.
import type { TypedArray } from "../core/dtype.js";
import { MoeError } from "../core/errors.js";
import { Tensor, watchValues } from "../core/tensor.js";
import { Prim, type Params } from "../prims/prims.js";
import type { Aval } from "../prims/shape-rules.js";
import type { Backend } from "./backend.js";
import { activeBackend } from "./select.js";
import { runKernel } from "./run-kernel.js";

/** Where a recorded input comes from: argument i, output j of step i, or a tensor the function closed over. */
type Ref = { arg: number } | { step: number; out: number } | { constant: Tensor } | { alias: Ref; shape: readonly number[] };

interface KernelStep {
  prim: Prim;
  params: unknown;
  impl: Backend;
  avals: readonly Aval[];
  ins: Ref[];
  /** while recording: the outputs, and whether an input depends on an argument */
  made?: readonly Tensor[];
  derived?: boolean;
}
interface CheckStep {
  check: (values: readonly Tensor[]) => void;
  ins: Ref[];
}
type Step = KernelStep | CheckStep;

/** A result's shape with its tensors replaced by where they come from. */
type Template = { tensor: Ref } | { array: Template[] } | { object: [string, Template][] } | { value: unknown };

interface Recording {
  steps: Step[];
  result: Template;
  /**
   * The storage the constants it computed depend on (the tensors they were computed from, and their own), each with
   * its Tensor.lastWrite when recorded: the constants are stale once one of these is rewritten in place or released.
   */
  sources: readonly (readonly [TypedArray | Uint16Array, number])[];
}

class Capture {
  readonly steps: Step[] = [];
  // tensors made by the steps or passed in, and the arrays behind them (a tensor made over the same storage outside
  // a primitive, as stopGradient does, is the same value)
  readonly where = new Map<Tensor, Ref>();
  readonly byStorage = new Map<TypedArray | Uint16Array, Ref>();
  readonly derived = new Set<Tensor>(); // depends on an argument
  readonly derivedStorage = new Set<TypedArray | Uint16Array>();
  quiet = 0; // inside a kernel or a recorded check: reads are theirs
  firstRead: Error | undefined;
  tracked = false;

  constructor(args: readonly Tensor[]) {
    args.forEach((t, i) => this.#known(t, { arg: i }, true));
  }

  #known(t: Tensor, r: Ref, derived: boolean): void {
    this.where.set(t, r);
    if (!this.byStorage.has(t.storage)) this.byStorage.set(t.storage, r);
    if (derived) {
      this.derived.add(t);
      this.derivedStorage.add(t.storage);
    }
  }

  ref(t: Tensor): Ref {
    const r = this.where.get(t);
    if (r !== undefined) return r;
    const same = this.byStorage.get(t.storage);
    return same !== undefined ? { alias: same, shape: t.shape } : { constant: t };
  }

  isDerived(t: Tensor): boolean {
    return this.derived.has(t) || (!this.where.has(t) && this.derivedStorage.has(t.storage));
  }

  kernel(prim: Prim, params: unknown, impl: Backend, avals: readonly Aval[], ins: readonly Tensor[], outs: readonly Tensor[]): void {
    if (ins.some((t) => t.node !== undefined)) this.tracked = true;
    const derived = ins.some((t) => this.isDerived(t));
    const step = this.steps.push({ prim, params, impl, avals, ins: ins.map((t) => this.ref(t)), made: outs, derived }) - 1;
    outs.forEach((t, out) => this.#known(t, { step, out }, derived));
  }

  read(t: Tensor): void {
    if (this.quiet === 0 && this.firstRead === undefined && this.isDerived(t)) {
      this.firstRead = new Error(`a ${t.dtype}[${t.shape.join(",")}] computed from the arguments was read`);
    }
  }

  template(v: unknown): Template {
    if (v instanceof Tensor) return { tensor: this.ref(v) };
    if (Array.isArray(v)) return { array: v.map((x) => this.template(x)) };
    if (v !== null && typeof v === "object") {
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) {
        throw new MoeError(
          `[jit] the function returned a ${proto?.constructor?.name ?? "object"}: results are tensors, arrays, plain objects and plain values`,
        );
      }
      return { object: Object.entries(v).map(([k, x]) => [k, this.template(x)]) };
    }
    if (typeof v === "function")
      throw new MoeError("[jit] the function returned a function: results are tensors, arrays, plain objects and plain values");
    return { value: v };
  }
}

let capture: Capture | undefined;

/** Whether apply should record its primitive (a capture is on and no kernel of it is running). */
export function capturing(): boolean {
  return capture !== undefined && capture.quiet === 0;
}

/** `f`, whose reads of values are dispatch's own (a kernel, a backend's check of the storage it is given). */
export function quietly<T>(f: () => T): T {
  const c = capture;
  if (c === undefined) return f();
  c.quiet++;
  try {
    return f();
  } finally {
    c.quiet--;
  }
}

/** apply's record of a primitive it ran while capturing. */
export function recordCaptured(
  prim: Prim,
  params: unknown,
  impl: Backend,
  avals: readonly Aval[],
  ins: readonly Tensor[],
  outs: readonly Tensor[],
): void {
  capture!.kernel(prim, params, impl, avals, ins, outs);
}

/** Refuses, before it runs, a primitive a replay would repeat wrongly: AdamW's bias correction is a per-step parameter. */
export function checkCapturable(prim: Prim): void {
  if (prim === Prim.AdamwStep)
    throw new MoeError("[jit] AdamW.step computes its bias correction from its step count on every call: call it outside jit");
}

// checkValues (core/tensor.ts) while recording: the check is a step, and runs now with its reads its own
function recordCheck(c: Capture, values: readonly Tensor[], check: (values: readonly Tensor[]) => void): void {
  if (c.quiet > 0) return check(values);
  c.steps.push({ check, ins: values.map((t) => c.ref(t)) });
  c.quiet++;
  try {
    check(values);
  } finally {
    c.quiet--;
  }
}

function record<R>(fn: (...args: Tensor[]) => R, args: readonly Tensor[]): { result: R; recording: Recording | undefined } {
  const c = new Capture(args);
  capture = c;
  watchValues({ read: (t) => c.read(t), check: (values, check) => recordCheck(c, values, check) });
  let result: R;
  let shape: Template;
  try {
    result = fn(...args);
    shape = c.template(result); // while recording: a getter of the result runs its primitives now, recorded
  } finally {
    capture = undefined;
    watchValues(undefined);
  }
  if (c.firstRead !== undefined) {
    const frames = (c.firstRead.stack ?? "").split("\n").filter((l) => l.trim().startsWith("at "));
    const at = frames.find((l) => !/[/\\](jit|tensor)\.[jt]s:/.test(l))?.trim() ?? "at an unknown place";
    throw new MoeError(
      `[jit] the function reads values it computed, so a replay could not follow its JavaScript: ${c.firstRead.message} ${at}`,
    );
  }
  return { result, recording: c.tracked ? undefined : pruned(c.steps, shape) };
}

// Primitives whose kernels write their inputs (the optimizer steps): always replayed.
const WRITES_INPUTS: ReadonlySet<Prim> = new Set([Prim.AdamwStep, Prim.SgdStep]);

/**
 * The steps a replay runs. A step that depends on no argument ran once while recording, and its outputs are constants
 * from then on (a weight cast or quantized, a memo filled on the first call). Of the rest, those the result or a check
 * reads, directly or not, and those that write their inputs.
 */
function pruned(steps: readonly Step[], result: Template): Recording {
  // a function that writes tensors in place (an optimizer step) may write what a constant was computed from
  const writes = steps.some((s) => !("check" in s) && WRITES_INPUTS.has(s.prim));
  // a step whose output the recorded call released (recycle) runs again at each replay
  const fixed = (s: Step): s is KernelStep => !writes && !("check" in s) && s.derived === false && !s.made!.some((t) => t.released);
  const live = new Set<number>();
  const use = (r: Ref): void => {
    if ("step" in r) live.add(r.step);
    else if ("alias" in r) use(r.alias);
  };
  const useAll = (t: Template): void => {
    if ("tensor" in t) use(t.tensor);
    else if ("array" in t) t.array.forEach(useAll);
    else if ("object" in t) t.object.forEach(([, x]) => useAll(x));
  };
  useAll(result);
  for (let i = steps.length - 1; i >= 0; i--) {
    const s = steps[i]!;
    if ("check" in s || WRITES_INPUTS.has(s.prim)) live.add(i);
    if (fixed(s)) live.delete(i);
    if (live.has(i)) s.ins.forEach(use);
  }
  const index = new Map<number, number>();
  steps.forEach((_, i) => live.has(i) && index.set(i, index.size));
  // the tensors every constant was computed from, through the steps before it, and the constants themselves
  const sources = new Set<TypedArray | Uint16Array>();
  const seen = new Set<number>();
  const from = (r: Ref): void => {
    if ("constant" in r) sources.add(r.constant.storage);
    else if ("alias" in r) from(r.alias);
    else if ("step" in r && !seen.has(r.step)) {
      seen.add(r.step);
      steps[r.step]!.ins.forEach(from);
    }
  };
  const moved = (r: Ref): Ref => {
    if ("alias" in r) return { alias: moved(r.alias), shape: r.shape };
    if (!("step" in r)) return r;
    const s = steps[r.step]!;
    if (!fixed(s)) return { step: index.get(r.step)!, out: r.out };
    const made = s.made![r.out]!;
    sources.add(made.storage);
    from(r);
    return { constant: made };
  };
  const movedAll = (t: Template): Template =>
    "tensor" in t
      ? { tensor: moved(t.tensor) }
      : "array" in t
        ? { array: t.array.map(movedAll) }
        : "object" in t
          ? { object: t.object.map(([k, x]) => [k, movedAll(x)]) }
          : t;
  const kept = steps
    .filter((_, i) => live.has(i))
    .map((s): Step =>
      "check" in s
        ? { ...s, ins: s.ins.map(moved) }
        : { prim: s.prim, params: s.params, impl: s.impl, avals: s.avals, ins: s.ins.map(moved) },
    );
  const shape = movedAll(result);
  return { steps: kept, result: shape, sources: [...sources].map((a) => [a, Tensor.lastWrite(a)] as const) };
}

function replay(rec: Recording, args: readonly Tensor[]): unknown {
  const outs: Tensor[][] = [];
  const value = (r: Ref): Tensor => {
    if ("arg" in r) return args[r.arg]!;
    if ("step" in r) return outs[r.step]![r.out]!;
    if ("constant" in r) return r.constant;
    const t = value(r.alias);
    return new Tensor(t.storage, r.shape, t.dtype);
  };
  for (const s of rec.steps) {
    const ins = s.ins.map(value);
    if ("check" in s) {
      s.check(ins);
      outs.push([]);
      continue;
    }
    outs.push(runKernel(s.impl, s.prim, ins, s.params as Params<Prim>, s.avals));
    if (WRITES_INPUTS.has(s.prim)) Tensor.rewritten(ins); // as ops/optim-steps.ts says after its step
  }
  const build = (t: Template): unknown =>
    "tensor" in t
      ? value(t.tensor)
      : "array" in t
        ? t.array.map(build)
        : "object" in t
          ? Object.fromEntries(t.object.map(([k, x]) => [k, build(x)]))
          : t.value;
  return build(rec.result);
}

/**
 * `fn` compiled to a replay of the primitives it dispatches (JAX's jit, recorded rather than traced): the first call
 * for each combination of argument shapes and dtypes (and backend) runs `fn` and records it, later ones replay the
 * kernels alone. For inference: a call whose arguments carry gradient tracking, or made while another jit records,
 * runs `fn` itself, and replayed results carry no gradient. Tensors `fn` closes over (weights) are read at each
 * replay from the same tensors (an in-place update shows); swapping one for another needs a new jit. What `fn` decides
 * from anything but its arguments' shapes and dtypes (a config, a counter, a key it makes) is fixed at its recorded
 * call, where its JavaScript side effects happen too.
 */
export function jit<A extends Tensor[], R>(fn: (...args: A) => R): (...args: A) => R {
  const recordings = new Map<string, Recording>();
  return (...args: A): R => {
    args.forEach((t, i) => {
      if (!(t instanceof Tensor))
        throw new MoeError(`[jit] argument ${i} is not a Tensor: got ${Object.prototype.toString.call(t).slice(8, -1)}`);
    });
    if (capture !== undefined || args.some((t) => t.node !== undefined)) return fn(...args);
    // arguments over the same storage are recorded as one: which ones do is part of the key
    const same = (t: Tensor): number => args.findIndex((u) => u.storage === t.storage);
    const key = `${activeBackend().name};${args.map((t) => `${t.dtype}${t.bf16Bits !== undefined ? "b" : ""}[${t.shape.join(",")}]@${same(t)}`).join(";")}`;
    const rec = recordings.get(key);
    if (rec !== undefined && rec.sources.every(([a, w]) => Tensor.lastWrite(a) === w)) return replay(rec, args) as R;
    const { result, recording } = record(fn as (...args: Tensor[]) => R, args);
    if (recording !== undefined) recordings.set(key, recording);
    return result;
  };
}
