// Entry of one rank's worker thread (see worker-group.ts).
import { parentPort, workerData, type MessagePort } from "node:worker_threads";
import { PortGroup } from "./port-group.js";
import { rankFunction } from "./rank-module.js";
import { decode, encode } from "./wire.js";
import { initFromEnv } from "../backends/select.js";
import { shareCores } from "../backends/native/index.js";

interface Data {
  rank: number;
  size: number;
  module: string;
  args: unknown;
  ports: (MessagePort | undefined)[];
}

const d = workerData as Data;
const group = new PortGroup(d.rank, d.size, d.ports);
try {
  initFromEnv();
  shareCores(d.size); // the ranks share this process's CPUs, each with its own native pool
  const value = await (await rankFunction(d.module))(group, decode(d.args));
  parentPort!.postMessage({ ok: true, value: encode(value) });
} catch (e) {
  parentPort!.postMessage({ ok: false, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
} finally {
  group.close();
}
