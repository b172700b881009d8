import { tensorArg } from "./args.js";
import { ShapeError } from "../core/errors.js";
import { size } from "../core/shape.js";
import type { Tensor } from "../core/tensor.js";
import { Prim } from "../prims/prims.js";
import { bind1 } from "../autodiff/bind.js";
import { reshape, transpose } from "./movement.js";
import { sum } from "./reduce.js";

/** [b,m,k] x [b,k,n] -> [b,m,n] */
export function batchMatmul(a: Tensor, b: Tensor): Tensor {
  tensorArg(a, "batchMatmul", 0);
  tensorArg(b, "batchMatmul", 1);
  return bind1(Prim.BatchMatmul, [a, b], {});
}

/** [..., m, k] x [..., k, n] -> [..., m, n] with equal leading dims. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  tensorArg(a, "matmul", 0);
  tensorArg(b, "matmul", 1);
  const lead = a.shape.slice(0, -2);
  const B = size(lead);
  if (a.ndim < 2 || b.ndim !== a.ndim || lead.some((d, i) => d !== b.shape[i])) {
    throw new ShapeError(`[matmul] cannot multiply ${a.toString()} by ${b.toString()}`);
  }
  const [m, k] = a.shape.slice(-2) as [number, number];
  const n = b.shape[b.ndim - 1]!;
  const r = batchMatmul(reshape(a, [B, m, k]), reshape(b, [B, b.shape[b.ndim - 2]!, n]));
  return reshape(r, [...lead, m, n]);
}

/** The labels of a two-operand einsum spec with an explicit output ("BSM,EMH->BSEH"), checked for repeats. */
export function einsumLabels(spec: string): { ia: string[]; ib: string[]; io: string[] } {
  const m = /^\s*(\w*)\s*,\s*(\w*)\s*->\s*(\w*)\s*$/.exec(spec);
  if (m === null) throw new ShapeError(`[einsum] cannot parse "${spec}" (two operands, one-letter labels, explicit output)`);
  const r = { ia: [...m[1]!], ib: [...m[2]!], io: [...m[3]!] };
  for (const [what, ls] of [
    ["first operand", r.ia],
    ["second operand", r.ib],
    ["output", r.io],
  ] as const) {
    if (new Set(ls).size !== ls.length)
      throw new ShapeError(`[einsum] repeated label in the ${what} of "${spec}" (traces/diagonals are not supported)`);
  }
  return r;
}

/**
 * Two-operand einsum with an explicit output, lowered to transpose + batch_matmul + transpose.
 * Labels in both inputs and the output are batch, in both inputs only are contracted, in one input
 * only and the output are free; labels in one input only and not the output are summed first.
 *
 * @example einsum("BSM,EMH->BSEH", x, w0)
 */
export function einsum(spec: string, a: Tensor, b: Tensor): Tensor {
  tensorArg(a, "einsum", 1);
  tensorArg(b, "einsum", 2);
  const { ia, ib, io } = einsumLabels(spec.replace(/ /g, ""));
  if (ia.length !== a.ndim || ib.length !== b.ndim) {
    throw new ShapeError(`[einsum] "${spec}" does not match operand ranks ${a.ndim} and ${b.ndim}`);
  }
  const dims = new Map<string, number>();
  const note = (labels: string[], t: Tensor): void =>
    labels.forEach((l, i) => {
      const d = t.shape[i]!;
      const prev = dims.get(l);
      if (prev !== undefined && prev !== d) throw new ShapeError(`[einsum] label ${l} has sizes ${prev} and ${d} in "${spec}"`);
      dims.set(l, d);
    });
  note(ia, a);
  note(ib, b);
  for (const l of io) if (!dims.has(l)) throw new ShapeError(`[einsum] output label ${l} not in inputs of "${spec}"`);
  // sum out labels private to one operand and absent from the output
  const privA = ia.filter((l) => !ib.includes(l) && !io.includes(l));
  const privB = ib.filter((l) => !ia.includes(l) && !io.includes(l));
  let x =
    privA.length > 0
      ? sum(
          a,
          privA.map((l) => ia.indexOf(l)),
        )
      : a;
  let y =
    privB.length > 0
      ? sum(
          b,
          privB.map((l) => ib.indexOf(l)),
        )
      : b;
  const la = ia.filter((l) => !privA.includes(l));
  const lb = ib.filter((l) => !privB.includes(l));
  const bat = la.filter((l) => lb.includes(l) && io.includes(l));
  const con = la.filter((l) => lb.includes(l) && !io.includes(l));
  const fa = la.filter((l) => !lb.includes(l));
  const fb = lb.filter((l) => !la.includes(l));
  const sz = (ls: string[]): number => size(ls.map((l) => dims.get(l)!));
  x = transpose(
    x,
    [...bat, ...fa, ...con].map((l) => la.indexOf(l)),
  );
  y = transpose(
    y,
    [...bat, ...con, ...fb].map((l) => lb.indexOf(l)),
  );
  x = reshape(x, [sz(bat), sz(fa), sz(con)]);
  y = reshape(y, [sz(bat), sz(con), sz(fb)]);
  const r = reshape(
    batchMatmul(x, y),
    [...bat, ...fa, ...fb].map((l) => dims.get(l)!),
  );
  const have = [...bat, ...fa, ...fb];
  return transpose(
    r,
    io.map((l) => have.indexOf(l)),
  );
}
