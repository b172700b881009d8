// Differentiable collectives over a Group. Linear maps in adjoint pairs:
// allGather ⇄ psumScatter, raggedAllToAll ⇄ raggedAllToAll with the roles of send and receive swapped.
import { MoeError } from "../core/errors.js";
import { allocate, roundBf16InPlace, type DType, type TypedArray } from "../core/dtype.js";
import { storagePool } from "../core/pool.js";
import { Tensor, tensor } from "../core/tensor.js";
import { attachNode } from "../autodiff/graph.js";
import { concatenate, moveAxis, reshape } from "../ops/movement.js";
import { noGrad } from "../autodiff/graph.js";
import { receiveBuffers, type Group } from "./group.js";

/** Rows of every rank concatenated on axis 0 (jax.lax.all_gather tiled=True). */
export async function allGather(group: Group, x: Tensor): Promise<Tensor> {
  const parts = await group.allGather(x);
  const out = noGrad(() => concatenate(parts, 0));
  attachNode([out], [x], async ([ct]) => [await psumScatter(group, ct!)], { collective: true });
  return out;
}

/** Sum over ranks, then this rank's 1/N slice of axis 0 (psum_scatter tiled=True). Sums in rank order. */
export async function psumScatter(group: Group, x: Tensor): Promise<Tensor> {
  const out = await group.reduceScatter(x);
  attachNode([out], [x], async ([ct]) => [await allGather(group, ct!)], { collective: true });
  return out;
}

/** Sum over ranks (psum), every rank gets the sum; differentiable (the cotangents are summed the same way). */
export async function psum(group: Group, x: Tensor): Promise<Tensor> {
  const out = await group.allReduce(x);
  attachNode([out], [x], async ([ct]) => [await psum(group, ct!)], { collective: true });
  return out;
}

/** allGather along `axis` (tiled): the ranks' blocks concatenated on it. */
export async function allGatherAxis(group: Group, x: Tensor, axis: number): Promise<Tensor> {
  if (group.size === 1) return x;
  return moveAxis(await allGather(group, moveAxis(x, axis, 0)), 0, axis);
}

/** psumScatter along `axis` (psum_scatter scatter_dimension=axis, tiled). */
export async function psumScatterAxis(group: Group, x: Tensor, axis: number): Promise<Tensor> {
  if (group.size === 1) return x;
  return moveAxis(await psumScatter(group, moveAxis(x, axis, 0)), 0, axis);
}

/** Sum over ranks (all-reduce), deterministic rank order; for gradients of replicated parameters. */
export async function allReduceSum(group: Group, x: Tensor): Promise<Tensor> {
  return group.allReduce(x);
}

/** Integer metadata of every rank stacked on a new axis 0 (no gradient). */
export async function allGatherStack(group: Group, x: Tensor): Promise<Tensor> {
  const parts = await group.allGather(x);
  return noGrad(() =>
    concatenate(
      parts.map((p) => reshape(p, [1, ...p.shape])),
      0,
    ),
  );
}

function vec(t: Tensor | readonly number[]): number[] {
  return Array.isArray(t) ? [...t] : Array.from((t as Tensor).data);
}

export interface RaggedParams {
  inputOffsets: readonly number[];
  sendSizes: readonly number[];
  /** offsets in the receivers' buffers */
  outputOffsets: readonly number[];
  recvSizes: readonly number[];
}

/**
 * jax.lax.ragged_all_to_all: rows operand[inputOffsets[i] : +sendSizes[i]] go to rank i, landing at
 * outputOffsets[i] of its output buffer (`outputRows` rows, zeros where nothing lands). Received sizes
 * must agree with what peers send. Differentiable in `operand`.
 */
export async function raggedAllToAll(group: Group, operand: Tensor, outputRows: number, p: RaggedParams): Promise<Tensor> {
  const n = group.size;
  const inner = operand.shape.slice(1);
  const rowSize = inner.reduce((a, d) => a * d, 1);
  // each peer's rows are a contiguous run of the operand's storage: sent as views, not copies
  const data = operand.data;
  const payload = Array.from({ length: n }, (_, i) => {
    const [at, m] = [p.inputOffsets[i]!, p.sendSizes[i]!];
    if (at < 0 || m < 0 || at + m > operand.shape[0]!)
      throw new MoeError(`[ragged_all_to_all] rows [${at}, ${at + m}) for rank ${i} are outside the ${operand.shape[0]}-row operand`);
    return new Tensor(data.subarray(at * rowSize, (at + m) * rowSize), [m, ...inner], operand.dtype);
  });
  const offsets = await group.allToAll(Array.from({ length: n }, (_, i) => tensor([p.outputOffsets[i]!], [1], "int32")));
  const got = await group.allToAll(payload);
  const runs = got.map((rows, j) => {
    const at = offsets[j]!.data[0]!;
    const m = rows.shape[0]!;
    if (m !== p.recvSizes[j])
      throw new MoeError(`[ragged_all_to_all] rank ${group.rank} expected ${p.recvSizes[j]} rows from rank ${j}, got ${m}`);
    if (at < 0 || at + m > outputRows) {
      throw new MoeError(
        `[ragged_all_to_all] ${m} rows from rank ${j} at offset ${at} overflow the ${outputRows}-row buffer of rank ${group.rank}`,
      );
    }
    return { at, m, src: rows.data };
  });
  const out = noGrad(() => new Tensor(placeRuns(runs, outputRows, rowSize, operand.dtype), [outputRows, ...inner], operand.dtype));
  attachNode(
    [out],
    [operand],
    async ([ct]) => {
      // adjoint: send back, from where peers' rows landed here, to where they came from
      const landedAt = vec(await exchange(group, p.outputOffsets));
      const cameFrom = vec(await exchange(group, p.inputOffsets));
      const back = await raggedAllToAll(group, ct!, operand.shape[0]!, {
        inputOffsets: landedAt,
        sendSizes: p.recvSizes,
        outputOffsets: cameFrom,
        recvSizes: p.sendSizes,
      });
      return [back];
    },
    { collective: true },
  );
  return out;
}

/**
 * The buffer of `outputRows` rows in which each run of received rows lands at its offset. Runs that tile the buffer
 * in rank order and arrived back to back in one of the group's receive buffers (MpiGroup's) are that buffer; disjoint runs are
 * copied into place; overlapping ones (a replicated batch's adjoint) are added into a zeroed buffer, peer by peer.
 */
function placeRuns(
  runs: readonly { at: number; m: number; src: TypedArray }[],
  outputRows: number,
  rowSize: number,
  dtype: DType,
): TypedArray {
  const first = runs[0]!.src;
  let next = 0;
  const tiles =
    receiveBuffers.has(first.buffer) &&
    runs.every(({ at, m, src }) => {
      const ok =
        at === next && src.buffer === first.buffer && src.byteOffset === first.byteOffset + next * rowSize * first.BYTES_PER_ELEMENT;
      next += m;
      return ok;
    });
  if (tiles && next === outputRows) {
    const View = first.constructor as new (b: ArrayBufferLike, at: number, n: number) => TypedArray;
    return new View(first.buffer, first.byteOffset, outputRows * rowSize);
  }
  const sorted = [...runs].sort((a, b) => a.at - b.at);
  const disjoint = sorted.every((r, i) => i === 0 || sorted[i - 1]!.at + sorted[i - 1]!.m <= r.at);
  const covered = sorted.reduce((a, r) => a + r.m, 0) === outputRows;
  const float32Storage = dtype === "float32" || dtype === "bfloat16";
  const buf = disjoint && covered && float32Storage ? storagePool.take(outputRows * rowSize) : allocate(dtype, outputRows * rowSize);
  if (disjoint) {
    for (const { at, src } of runs) buf.set(src, at * rowSize);
    return buf;
  }
  for (const { at, src } of runs) for (let i = 0, o = at * rowSize; i < src.length; i++, o++) buf[o] = buf[o]! + src[i]!;
  if (dtype === "bfloat16") roundBf16InPlace(buf as Float32Array);
  return buf;
}

/** a2a of one int per peer: result[j] = rank j's v[me]. */
async function exchange(group: Group, v: readonly number[]): Promise<number[]> {
  const got = await group.allToAll(v.map((x) => tensor([x], [1], "int32")));
  return got.map((t) => t.data[0]!);
}
