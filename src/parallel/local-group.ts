import { MoeError } from "../core/errors.js";
import { Tensor } from "../core/tensor.js";
import { GroupBase, type CollectiveOp, type Group } from "./group.js";

interface Slot {
  op: string;
  payload: unknown[];
  arrived: number;
  waiters: { resolve: (v: unknown[]) => void; reject: (e: Error) => void }[];
}

/** Shared state of N in-process ranks: a rendezvous per collective call, in call order. */
class Rendezvous {
  readonly slots = new Map<number, Slot>();
  readonly returned = new Set<number>();
  failure: Error | undefined;

  constructor(readonly size: number) {}

  meet(rank: number, seq: number, op: string, value: unknown): Promise<unknown[]> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.returned.size > 0) {
      this.fail(new MoeError(`[group] rank ${rank} calls ${op} (call ${seq}) after rank ${[...this.returned].join(", ")} returned`));
      return Promise.reject(this.failure!);
    }
    let slot = this.slots.get(seq);
    if (slot === undefined) {
      slot = { op, payload: new Array<unknown>(this.size), arrived: 0, waiters: [] };
      this.slots.set(seq, slot);
    }
    if (slot.op !== op) {
      const e = new MoeError(`[group] collective mismatch at call ${seq}: rank ${rank} called ${op}, another rank ${slot.op}`);
      this.fail(e);
      return Promise.reject(e);
    }
    slot.payload[rank] = value;
    slot.arrived++;
    const s = slot;
    const p = new Promise<unknown[]>((resolve, reject) => s.waiters.push({ resolve, reject }));
    if (slot.arrived === this.size) {
      this.slots.delete(seq);
      for (const w of slot.waiters) w.resolve(slot.payload);
    }
    return p;
  }

  /** Rank `rank`'s function returned: a call some rank waits in can no longer complete. */
  finish(rank: number): void {
    this.returned.add(rank);
    for (const [seq, s] of this.slots)
      if (s.payload[rank] === undefined)
        this.fail(new MoeError(`[group] rank ${rank} returned while another rank waits in call ${seq} (${s.op})`));
  }

  fail(e: Error): void {
    this.failure ??= e;
    for (const s of this.slots.values()) for (const w of s.waiters) w.reject(this.failure);
    this.slots.clear();
  }
}

const detach = (t: Tensor): Tensor => t.sameStorage();

class LocalRank extends GroupBase {
  #seq = 0;
  constructor(
    readonly rank: number,
    readonly size: number,
    private readonly rv: Rendezvous,
  ) {
    super();
  }

  async gather(x: Tensor, op: CollectiveOp): Promise<Tensor[]> {
    return (await this.rv.meet(this.rank, this.#seq++, op, [detach(x)])).map((sent) => (sent as Tensor[])[0]!);
  }

  async exchange(xs: readonly Tensor[], op: CollectiveOp): Promise<Tensor[]> {
    return (await this.rv.meet(this.rank, this.#seq++, op, xs.map(detach))).map((sent) => (sent as Tensor[])[this.rank]!);
  }
}

/** N ranks in one process (deterministic; the test backbone). One Group handle per rank. */
export function createLocalGroup(size: number): Group[] {
  return makeRanks(size).ranks;
}

function makeRanks(size: number): { ranks: Group[]; rv: Rendezvous } {
  if (!Number.isInteger(size) || size < 1) throw new MoeError(`[group] size must be a positive integer, got ${size}`);
  const rv = new Rendezvous(size);
  return { ranks: Array.from({ length: size }, (_, r) => new LocalRank(r, size, rv)), rv };
}

/**
 * Run `fn` on every rank of a fresh local group, concurrently; resolves to the per-rank results.
 * If one rank fails, the others are released with the same error instead of waiting forever.
 */
export async function runSpmd<T>(size: number, fn: (group: Group) => Promise<T>): Promise<T[]> {
  const { ranks, rv } = makeRanks(size);
  return Promise.all(
    ranks.map(async (g) => {
      try {
        const out = await fn(g);
        rv.finish(g.rank);
        return out;
      } catch (e) {
        rv.fail(e as Error);
        throw e;
      }
    }),
  );
}
