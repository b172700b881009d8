import { parseArgs } from "node:util";
import { runtimeInfo } from "../../backends/select.js";

export function infoCommand(argv: string[]): number {
  const { values } = parseArgs({ args: argv, options: { json: { type: "boolean" } } });
  const r = runtimeInfo();
  const info = {
    backend: r.backend,
    native: r.native.available ? "available" : `unavailable (${r.native.reason ?? "?"})`,
    isa: r.native.isa ?? "-",
    bestIsa: r.native.bestIsa ?? "-",
    threads: r.native.threads,
    bf16Path: r.native.bf16Path ?? "-",
    node: process.version,
  };
  if (values.json === true) console.log(JSON.stringify(info, null, 2));
  else for (const [k, v] of Object.entries(info)) console.log(`${k.padEnd(9)} ${String(v)}`);
  return 0;
}
