import { parseCommandArgs } from "../flags.js";
import { runtimeInfo } from "../../backends/select.js";
import { nativeBinding } from "../../backends/native/binding.js";

const HELP = `Usage: moekit info [--json]

Prints the backend in use, whether the native addon loaded (and why not), its ISA (in use and best available),
thread count, bf16 path, GEMM blocking (derived from the cache sizes, or set by \`moekit tune\`'s file) and where
it came from, the CPU, and the Node version. The MOEKIT_* environment flags (moekit --help) change them.

Options:
  --json      one JSON object`;

export function infoCommand(argv: string[]): number {
  const { values } = parseCommandArgs({ args: argv, options: { json: { type: "boolean" }, help: { type: "boolean", short: "h" } } });
  if (values.help === true) {
    console.log(HELP);
    return 0;
  }
  const r = runtimeInfo();
  const info = {
    backend: r.backend,
    native: r.native.available ? "available" : `unavailable (${r.native.reason ?? "?"})`,
    isa: r.native.isa ?? "-",
    bestIsa: r.native.bestIsa ?? "-",
    threads: r.native.threads,
    bf16Path: r.native.bf16Path ?? "-",
    blocking: r.native.blocking ?? "-",
    tuning: r.native.tuning ?? "-",
    cpu: nativeBinding()?.cpuBrand() ?? "-",
    node: process.version,
  };
  if (values.json === true) console.log(JSON.stringify(info, null, 2));
  else for (const [k, v] of Object.entries(info)) console.log(`${k.padEnd(9)} ${String(v)}`);
  return 0;
}
