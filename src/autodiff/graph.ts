import type { Aval } from "../prims/shape-rules.js";
import { newNodeId, Tensor, type GradNode } from "../core/tensor.js";
import { isFloat } from "../core/dtype.js";
import { MoeError } from "../core/errors.js";

type Cts = readonly (Tensor | undefined)[];
export type VjpFn = (cts: Cts) => (Tensor | undefined)[] | Promise<(Tensor | undefined)[]>;

let recording = true;

/** Whether ops currently record graph nodes (false inside backward passes and `noGrad`). */
export function isRecording(): boolean {
  return recording;
}

/** Run `f` without recording: its results carry no gradient. */
export function noGrad<T>(f: () => T): T {
  return withRecording(false, f);
}

/** Run `f` recording or not (a function differentiated inside noGrad or a backward pass still records). */
export function withRecording<T>(on: boolean, f: () => T): T {
  const prev = recording;
  recording = on;
  try {
    return f();
  } finally {
    recording = prev;
  }
}

export interface NodeOptions {
  collective?: boolean;
}

export interface InternalNode extends GradNode {
  readonly outAvals: readonly Aval[];
}

/** Attach a graph node to `outputs` if recording and any parent is tracked. Returns the outputs. */
export function attachNode(outputs: Tensor[], parents: readonly Tensor[], vjp: VjpFn, opts: NodeOptions = {}): Tensor[] {
  if (!recording || !parents.some((p) => p.node !== undefined)) return outputs;
  if (!outputs.some((o) => isFloat(o.dtype))) return outputs;
  const node: InternalNode = {
    id: newNodeId(),
    parents,
    numOutputs: outputs.length,
    collective: opts.collective ?? false,
    leaf: false,
    outAvals: outputs.map((o) => ({ shape: o.shape, dtype: o.dtype })),
    vjp,
  };
  outputs.forEach((o, i) => {
    if (isFloat(o.dtype)) {
      o.node = node;
      o.outIndex = i;
    }
  });
  return outputs;
}

/** A fresh tracked leaf sharing `t`'s storage. */
export function makeLeaf(t: Tensor, i = 0): Tensor {
  if (!(t instanceof Tensor))
    throw new MoeError(`[grad] argument ${i} is not a Tensor: got ${Object.prototype.toString.call(t).slice(8, -1)}`);
  const leaf = t.sameStorage();
  const node: InternalNode = {
    id: newNodeId(),
    parents: [],
    numOutputs: 1,
    collective: false,
    leaf: true,
    outAvals: [{ shape: t.shape, dtype: t.dtype }],
    vjp: () => [],
  };
  leaf.node = node;
  return leaf;
}

/** The same storage without gradient tracking. */
export function stopGradient(t: Tensor): Tensor {
  if (t.node === undefined) return t;
  return t.sameStorage();
}
