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

class Inbox {
  readonly queue: Msg[] = [];
  readonly waiters: ((m: Msg) => void)[] = [];

  constructor(port: MessagePort) {
    port.on("message", (m: Msg) => {
      const w = this.waiters.shift();
      if (w !== undefined) w(m);
      else this.queue.push(m);
    });
  }

  next(): Promise<Msg> {
    const m = this.queue.shift();
    return m !== undefined ? Promise.resolve(m) : new Promise((resolve) => this.waiters.push(resolve));
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
    this.#inboxes = ports.map((p) => (p === undefined ? undefined : new Inbox(p)));
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
