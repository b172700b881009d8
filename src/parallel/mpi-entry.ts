// One MPI rank started by runMpi (mpi-launch.ts): `node mpi-entry.js <module> <dir>`; args from dir/args.bin,
// the result to dir/rank-<r>.bin. A failure exits non-zero, which aborts the job (joinMpi's exit hook).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { deserialize, serialize } from "node:v8";
import { joinMpi } from "./mpi-group.js";
import { rankFunction } from "./rank-module.js";
import { decode, encode } from "./wire.js";
import { initFromEnv } from "../backends/select.js";

const [module, dir] = process.argv.slice(2) as [string, string];
const group = joinMpi();
try {
  initFromEnv();
  const value = await (await rankFunction(module))(group, decode(deserialize(readFileSync(join(dir, "args.bin")))));
  writeFileSync(join(dir, `rank-${group.rank}.bin`), serialize(encode(value)));
} catch (e) {
  process.stderr.write(`moekit: MPI rank ${group.rank} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
}
