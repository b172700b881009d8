/// <reference types="node" preserve="true" />
// A Group over MessagePorts: one port per peer, FIFO per port (collectives are called in the same
// order on every rank, so the n-th message from a peer belongs to the n-th collective).
import type { MessagePort } from "node:worker_threads";
import { MoeError } from "../core/errors.js";
import type { Tensor } from "../core/tensor.js";
import { GroupBase, type CollectiveOp } from "./group.js";
import { decode, encodeOwned } from "./wire.js";

interface Msg {
  seq: number;
  op: string;
  t: unknown;
}

/** What a rank reports when a peer left: runWorkers prefers the peer's own failure to it. */
export const PEER_GONE = "returned (or failed) while this rank waits for its part of a collective";

class Inbox {
  readonly queue: Msg[] = [];
  readonly waiters: { resolve: (m: Msg) => void; reject: (e: Error) => void }[] = [];
  closed = false;

  constructor(
    port: MessagePort,
    private readonly peer: number,
  ) {
    port.on("message", (m: Msg) => {
      const w = this.waiters.shift();
      if (w !== undefined) w.resolve(m);
      else this.queue.push(m);
    });
    // the peer's rank returned or failed (worker-entry closes its ports): nothing more will come from it
    port.on("close", () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w.reject(this.#gone());
    });
  }

  #gone(): MoeError {
    return new MoeError(`[group] rank ${this.peer} ${PEER_GONE}`);
  }

  next(): Promise<Msg> {
    const m = this.queue.shift();
    if (m !== undefined) return Promise.resolve(m);
    if (this.closed) return Promise.reject(this.#gone());
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}

export class PortGroup extends GroupBase {
  #seq = 0;
  readonly #inboxes: (Inbox | undefined)[];

  constructor(
    readonly rank: number,
    readonly size: number,
    private readonly ports: readonly (MessagePort | undefined)[],
  ) {
    super();
    this.#inboxes = ports.map((p, j) => (p === undefined ? undefined : new Inbox(p, j)));
  }

  gather(x: Tensor, op: CollectiveOp): Promise<Tensor[]> {
    return this.exchange(new Array<Tensor>(this.size).fill(x), op);
  }

  async exchange(xs: readonly Tensor[], op: CollectiveOp): Promise<Tensor[]> {
    const seq = this.#seq++;
    this.ports.forEach((p, j) => {
      if (p === undefined) return;
      const [t, storage] = encodeOwned(xs[j]!);
      p.postMessage({ seq, op, t } satisfies Msg, [storage]);
    });
    const out: Tensor[] = [];
    for (let j = 0; j < this.size; j++) {
      if (j === this.rank) {
        out.push(xs[j]!.sameStorage());
        continue;
      }
      const m = await this.#inboxes[j]!.next();
      if (m.seq !== seq || m.op !== op) {
        throw new MoeError(`[group] collective mismatch on rank ${this.rank}: call ${seq} is ${op}, rank ${j} sent ${m.op} #${m.seq}`);
      }
      out.push(decode(m.t) as Tensor);
    }
    return out;
  }

  close(): void {
    for (const p of this.ports) p?.close();
  }
}
