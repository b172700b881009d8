import { parseArgs } from "node:util";
import { getBackend, listBackends } from "../../backends/backend.js";
import "../../ops/bind.js";

export function infoCommand(argv: string[]): number {
  const { values } = parseArgs({ args: argv, options: { json: { type: "boolean" } } });
  const info = { backend: getBackend().name, backends: listBackends(), node: process.version };
  if (values.json === true) console.log(JSON.stringify(info, null, 2));
  else for (const [k, v] of Object.entries(info)) console.log(`${k}: ${Array.isArray(v) ? v.join(", ") : v}`);
  return 0;
}
