import { Tensor, zeros, type GradNode } from "../core/tensor.js";
import { MoeError } from "../core/errors.js";
import { add, cast } from "./lax.js";
import { noGrad, type InternalNode } from "./graph.js";

type Ct = Tensor | undefined;
type Step = Promise<Ct[]>;

function accumulate(map: Map<GradNode, Ct[]>, t: Tensor, ct: Tensor): void {
  const node = t.node!;
  let slot = map.get(node);
  if (slot === undefined) {
    slot = new Array<Ct>(node.numOutputs).fill(undefined);
    map.set(node, slot);
  }
  const c = ct.dtype === t.dtype ? ct : cast(ct, t.dtype);
  const prev = slot[t.outIndex];
  slot[t.outIndex] = prev === undefined ? c : add(prev, c);
}

/**
 * Reverse sweep from `outputs` (seeded with `cts`) to `leaves`. A generator so the same code runs
 * synchronously, or awaits the VJPs of collectives when driven by `runAsync`.
 */
function* sweep(outputs: readonly Tensor[], cts: readonly Ct[], leaves: readonly Tensor[]): Generator<Step, Ct[], Ct[]> {
  const map = new Map<GradNode, Ct[]>();
  const nodes = new Set<GradNode>();
  const stack: GradNode[] = [];
  outputs.forEach((o, i) => {
    if (o.node === undefined || cts[i] === undefined) return; // an undefined cotangent is zero
    accumulate(map, o, cts[i]);
    stack.push(o.node);
  });
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (nodes.has(n)) continue;
    nodes.add(n);
    for (const p of n.parents) if (p.node !== undefined && !nodes.has(p.node)) stack.push(p.node);
  }
  const order = [...nodes].sort((a, b) => b.id - a.id);
  for (const node of order) {
    if (node.leaf) continue;
    let cts = map.get(node);
    if (cts === undefined) {
      if (!node.collective) continue;
      cts = [];
    }
    const filled = (node as InternalNode).outAvals.map((a, i) => cts[i] ?? (node.collective ? zeros(a.shape, a.dtype) : undefined));
    const r = noGrad(() => node.vjp(filled));
    const inCts = r instanceof Promise ? yield r : r;
    node.parents.forEach((p, i) => {
      const c = inCts[i];
      if (c !== undefined && p.node !== undefined) noGrad(() => accumulate(map, p, c));
    });
    map.delete(node);
  }
  return leaves.map((l) => (l.node === undefined ? undefined : map.get(l.node)?.[0]));
}

export function backwardSync(outputs: readonly Tensor[], cts: readonly Ct[], leaves: readonly Tensor[]): Ct[] {
  const r = sweep(outputs, cts, leaves).next();
  if (r.done !== true) {
    throw new MoeError("[grad] the function communicates across ranks: use valueAndGradAsync");
  }
  return r.value;
}

export async function backwardAsync(outputs: readonly Tensor[], cts: readonly Tensor[], leaves: readonly Tensor[]): Promise<Ct[]> {
  const g = sweep(outputs, cts, leaves);
  let r = g.next();
  while (r.done !== true) r = g.next(await r.value);
  return r.value;
}
