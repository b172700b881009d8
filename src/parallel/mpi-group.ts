/// <reference types="node" preserve="true" />
// A Group over MPI: one process is one rank (`mpirun -np N node app.mjs`, then `joinMpi()`). The optional addon
// native/mpi (built at install when `mpicc` works) starts each collective non-blocking and waits for it on the JS
// main thread with a deadline (MOEKIT_MPI_TIMEOUT): the calling rank's event loop is blocked meanwhile, which an
// SPMD program, whose next step needs the result, does not mind.
//
// Every collective first exchanges a fixed header with each peer (point-to-point: the op, the call number and
// the shape and storage of what goes to that peer), so that ranks calling different collectives, or receiving
// ragged shapes, find out before any data moves, and a rank that never comes is named when the deadline passes. The data then moves from the tensors' own typed arrays: allGather by
// MPI_Allgatherv into one buffer whose slices become the received tensors, allToAll by MPI_Alltoallw with an
// absolute-address datatype per peer (MPI_BOTTOM), so that neither side packs. The reductions stay GroupBase's
// (allGather / allToAll, then a sum in rank order), not MPI_Allreduce / MPI_Reduce_scatter: MPI does not fix
// the order of its sums, and the results must equal the other Group implementations' bits.
import { inspect } from "node:util";
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DTYPES, type TypedArray } from "../core/dtype.js";
import { readEnv } from "../core/env.js";
import { MoeError } from "../core/errors.js";
import { packageRoot } from "../core/package-root.js";
import { storagePool } from "../core/pool.js";
import { shareCores } from "../backends/native/index.js";
import { Tensor } from "../core/tensor.js";
import { GroupBase, receiveBuffers, type CollectiveOp, type Group } from "./group.js";

interface MpiBinding {
  init(): [number, number];
  version(): string;
  split(comm: number, color: number, key: number): number;
  headers(comm: number, send: Int32Array, recv: Int32Array, timeoutS: number): void;
  allgatherv(
    comm: number,
    send: TypedArray | Uint16Array,
    recv: Uint8Array,
    counts: Int32Array,
    displs: Int32Array,
    timeoutS: number,
  ): void;
  alltoallw(comm: number, sends: (TypedArray | Uint16Array)[], recvs: (TypedArray | Uint16Array)[], timeoutS: number): void;
  sendrecv(comm: number, peer: number, send: TypedArray, recv: TypedArray, timeoutS: number): void;
  abort(code: number): void;
  finalize(): void;
}

const ADDON = join("native", "mpi", "build", "Release", "moekit_mpi.node");
let loaded: { binding?: MpiBinding; reason?: string } | undefined;

function load(): { binding?: MpiBinding; reason?: string } {
  const root = packageRoot();
  if (root === undefined) return { reason: "package root not found" };
  const path = join(root, ADDON);
  if (!existsSync(path)) {
    return { reason: `${path} not found (it is built at install when \`mpicc\` works: install Open MPI, then \`npm run build:mpi\`)` };
  }
  try {
    return { binding: createRequire(import.meta.url)(path) as MpiBinding };
  } catch (e) {
    return { reason: `${path} failed to load: ${e instanceof Error ? e.message : String(e)}` };
  }
}

function binding(): MpiBinding | undefined {
  loaded ??= load();
  return loaded.binding;
}

/** Why MpiGroup is unavailable (the addon is missing or does not load), or undefined when it is available. */
export function mpiUnavailableReason(): string | undefined {
  binding();
  return loaded!.reason;
}

// the per-peer header: op, call number, storage kind, dtype, ndim, dims
const OPS = ["allGather", "allToAll", "allReduce", "reduceScatter", "barrier", "subGroup"] as const;
type Op = (typeof OPS)[number];
const MAX_DIMS = 7;
const HEADER = 5 + MAX_DIMS;
const STORAGE = [Float32Array, Float64Array, Int32Array, Int8Array, Uint8Array, Uint16Array] as const;
type Storage = TypedArray | Uint16Array;

const storageOf = (t: Tensor): Storage => t.bf16Bits ?? t.data;

function writeHeader(h: Int32Array, at: number, op: Op, seq: number, t: Tensor | undefined): void {
  h[at] = OPS.indexOf(op);
  h[at + 1] = seq;
  if (t === undefined) return;
  if (t.shape.length > MAX_DIMS) throw new MoeError(`[mpi] ${op}: tensors of rank ${t.shape.length} (over ${MAX_DIMS})`);
  const s = storageOf(t);
  h[at + 2] = STORAGE.findIndex((c) => s instanceof c);
  h[at + 3] = DTYPES.indexOf(t.dtype);
  h[at + 4] = t.shape.length;
  t.shape.forEach((d, i) => (h[at + 5 + i] = d));
}

interface Incoming {
  make: (buffer: ArrayBuffer, byteOffset: number) => Tensor;
  length: number;
  bytes: number;
}

function readHeader(h: Int32Array, at: number): Incoming {
  const ctor = STORAGE[h[at + 2]!]!;
  const shape = Array.from(h.subarray(at + 5, at + 5 + h[at + 4]!));
  const length = shape.reduce((a, b) => a * b, 1);
  return {
    make: (buffer, byteOffset) => new Tensor(new ctor(buffer, byteOffset, length), shape, DTYPES[h[at + 3]!]!),
    length,
    bytes: length * ctor.BYTES_PER_ELEMENT,
  };
}

class MpiComm extends GroupBase {
  #seq = 0;
  readonly #subGroups = new Map<string, Group>();

  constructor(
    private readonly mpi: MpiBinding,
    private readonly comm: number,
    readonly rank: number,
    readonly size: number,
    private readonly timeoutS: number,
  ) {
    super();
  }

  /** Exchanges the headers (`sent(j)`: what goes to rank j) and checks that every rank is at the same call. */
  #headers(op: Op, sent: (j: number) => Tensor | undefined): Int32Array {
    const seq = this.#seq++;
    const send = new Int32Array(HEADER * this.size);
    for (let j = 0; j < this.size; j++) writeHeader(send, j * HEADER, op, seq, sent(j));
    const recv = new Int32Array(HEADER * this.size);
    try {
      this.mpi.headers(this.comm, send, recv, this.timeoutS);
    } catch (e) {
      throw new MoeError(`[mpi] rank ${this.rank} at call ${seq} (${op}): ${(e as Error).message.replace(/^\[mpi\] /, "")}`);
    }
    for (let j = 0; j < this.size; j++) {
      const [o, s] = [recv[j * HEADER]!, recv[j * HEADER + 1]!];
      if (o !== OPS.indexOf(op) || s !== seq) {
        throw new MoeError(`[mpi] collective mismatch: rank ${this.rank} is at call ${seq} (${op}), rank ${j} at call ${s} (${OPS[o]})`);
      }
    }
    return recv;
  }

  async gather(x: Tensor, op: CollectiveOp): Promise<Tensor[]> {
    const h = this.#headers(op, () => x);
    const incoming = Array.from({ length: this.size }, (_, j) => readHeader(h, j * HEADER));
    // 8-byte aligned slices of one buffer, so that each can be viewed as its typed array
    const displs = new Int32Array(this.size);
    let total = 0;
    incoming.forEach((m, j) => {
      displs[j] = total;
      total += Math.ceil(m.bytes / 8) * 8;
    });
    const recv = new Uint8Array(total);
    this.mpi.allgatherv(
      this.comm,
      storageOf(x),
      recv,
      Int32Array.from(incoming, (m) => m.bytes),
      displs,
      this.timeoutS,
    );
    return incoming.map((m, j) => m.make(recv.buffer, displs[j]!));
  }

  async exchange(xs: readonly Tensor[], op: CollectiveOp): Promise<Tensor[]> {
    const h = this.#headers(op, (j) => xs[j]);
    // one receive buffer, each peer's part at the next offset its element size allows: parts of one dtype lie back to
    // back, so a caller can take them as one array (collectives.ts's raggedAllToAll does). Every byte a part covers is
    // written; the buffer comes from the storage pool, whose blocks are already mapped.
    const incoming = Array.from({ length: this.size }, (_, j) => readHeader(h, j * HEADER));
    const displs = incoming.map(() => 0);
    let total = 0;
    incoming.forEach((m, j) => {
      const align = m.bytes === 0 ? 1 : m.bytes / m.length;
      displs[j] = total = Math.ceil(total / align) * align;
      total += m.bytes;
    });
    const recv = storagePool.take(Math.ceil(total / 4));
    receiveBuffers.add(recv.buffer);
    const out = incoming.map((m, j) => m.make(recv.buffer as ArrayBuffer, recv.byteOffset + displs[j]!));
    this.mpi.alltoallw(this.comm, xs.map(storageOf), out.map(storageOf), this.timeoutS);
    return out;
  }

  /**
   * MPI's own point-to-point exchange with `peer` (MPI_Isend / MPI_Irecv, no header and no checks beyond MPI's): `send`
   * goes to it while `recv` takes what it sends. For measuring the transport under the collectives (bench:mpi);
   * both ranks call it naming each other.
   */
  sendRecv(peer: number, send: TypedArray, recv: TypedArray): void {
    this.mpi.sendrecv(this.comm, peer, send, recv, this.timeoutS);
  }

  /** Returns when every rank has called it (the header exchange alone, so a mismatched call is caught too). */
  override async barrier(): Promise<void> {
    this.#headers("barrier", () => undefined);
  }

  /**
   * The ranks `members` (this one among them) as their own MPI communicator (MPI_Comm_split, made once per member
   * list): every rank of this group must ask at the same point, each for the group it belongs to.
   */
  subGroup(members: readonly number[]): Group {
    const key = members.join(",");
    let g = this.#subGroups.get(key);
    if (g === undefined) {
      this.#headers("subGroup", () => undefined); // every rank is here (or named by the deadline) before the split blocks
      const comm = this.mpi.split(this.comm, Math.min(...members), members.indexOf(this.rank));
      g = new MpiComm(this.mpi, comm, members.indexOf(this.rank), members.length, this.timeoutS);
      this.#subGroups.set(key, g);
    }
    return g;
  }
}

/** The world group of an MPI job (every rank of `mpirun -np N`). */
export type MpiGroup = MpiComm;

let world: MpiComm | undefined;

/**
 * Joins the MPI job this process was started in (`mpirun -np N node app.mjs`): the world group, this process
 * being rank `group.rank`. Run alone, it is a group of one. On exit the job ends cleanly (MPI_Finalize) when the
 * exit code is 0; otherwise the whole job is aborted (MPI_Abort), so that no rank waits for this one forever. Without
 * MOEKIT_THREADS, the ranks on one node split its CPUs between their native pools.
 */
export function joinMpi(): MpiGroup {
  if (world !== undefined) return world;
  const mpi = binding();
  if (mpi === undefined) throw new MoeError(`[mpi] MPI unavailable: ${mpiUnavailableReason()!}`);
  const timeoutS = readEnv().mpiTimeoutS ?? 300;
  const [rank, size] = mpi.init();
  world = new MpiComm(mpi, 0, rank, size, timeoutS);
  // ranks on one node share its CPUs (Open MPI names how many run here)
  shareCores(Number(process.env.OMPI_COMM_WORLD_LOCAL_SIZE ?? 1));
  // Node emits "exit" before it prints an uncaught error, and the abort below ends the process there: print it first
  let fatal: unknown;
  process.on("uncaughtExceptionMonitor", (e) => (fatal = e));
  process.on("exit", (code) => {
    if (code === 0) return mpi.finalize();
    if (fatal !== undefined) process.stderr.write(`${fatal instanceof Error ? (fatal.stack ?? String(fatal)) : inspect(fatal)}\n`);
    process.stderr.write(`moekit: MPI rank ${rank} of ${size} exits with code ${code}: aborting the job\n`);
    mpi.abort(code);
  });
  return world;
}
