import { MoeError } from "../core/errors.js";
import { initFromEnv } from "../backends/select.js";
import { setMemoryBudget } from "../core/memory.js";
import { checkCommand } from "./commands/check.js";
import { convertCommand } from "./commands/convert.js";
import { infoCommand } from "./commands/info.js";
import { initCommand } from "./commands/init.js";
import { presetsCommand } from "./commands/presets.js";
import { quantizeCommand } from "./commands/quantize.js";
import { runCommand } from "./commands/run.js";
import { tuneCommand } from "./commands/tune.js";

export const VERSION = "0.1.0";

const HELP = `moekit ${VERSION} — MaxText's Mixture-of-Experts layer in TypeScript

Usage: moekit <command> [options]

Commands:
  check <file-or-dir>...   run golden cases (JSON) and compare every expected tensor
  run                      run a layer: a preset or config with initialised weights, or one MoE layer of a
                           Hugging Face / MaxText checkpoint (--checkpoint PATH --layer N)
  convert                  convert one MoE layer between Hugging Face and MaxText layouts
  quantize                 quantize one MoE layer's experts for serving (int8, int4) and save it
  init                     write a preset's layer (initialised weights) as a MaxText or Hugging Face checkpoint
  presets                  list the MaxText model presets (and their tiny twins)
  info                     backend, ISA, threads, bf16 path and GEMM blocking in use
  tune                     measure the native GEMM blocking on this machine and save it for start-up

Environment: MOEKIT_BACKEND=auto|native|ref (default auto: native when built), MOEKIT_THREADS=n,
MOEKIT_POOL_MB=n (budget of the recycled-storage pool and of the addon's free blocks, MiB each, default 2048),
MOEKIT_NATIVE_ISA=scalar|avx2|avx512 (caps the native ISA), MOEKIT_NATIVE_BF16=widen|dpbf16|amx (how bf16
weights are multiplied; default: amx where available, dpbf16 on AMD cores, else widen), MOEKIT_TRACE=1 (each primitive's backend, calls and time, at exit),
MOEKIT_TUNE=path|off (the GEMM blocking file; default: this CPU's from \`moekit tune\`, where it exists),
MOEKIT_MPI_TIMEOUT=seconds (an MPI collective not done by then names the missing ranks and ends the job; default
300, 0 = never), MOEKIT_NATIVE=0|off (do not load the native addon), MOEKIT_NATIVE_ADDON=path (load it from path).

Run \`moekit <command> --help\` for a command's options.`;

/** CLI entry: returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    initFromEnv();
    setMemoryBudget(undefined);
    switch (cmd) {
      case undefined:
      case "--help":
      case "-h":
      case "help":
        console.log(HELP);
        return cmd === undefined ? 1 : 0;
      case "--version":
      case "-v":
        console.log(VERSION);
        return 0;
      case "check":
        return await checkCommand(rest);
      case "run":
        return await runCommand(rest);
      case "convert":
        return await convertCommand(rest);
      case "quantize":
        return quantizeCommand(rest);
      case "init":
        return initCommand(rest);
      case "presets":
        return presetsCommand(rest);
      case "info":
        return infoCommand(rest);
      case "tune":
        return await tuneCommand(rest);
      default:
        console.error(`moekit: unknown command "${cmd}"\n\n${HELP}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof MoeError || (e instanceof Error && e.name === "TypeError" && e.message.includes("parseArgs"))) {
      console.error(`moekit ${cmd}: ${e.message}`);
      return 2;
    }
    if (e instanceof Error && "code" in e && typeof e.code === "string" && e.code.startsWith("ERR_PARSE_ARGS")) {
      // parseArgs explains over several lines ("argument is ambiguous. Did you forget ...?"): one line here
      console.error(`moekit ${cmd}: ${e.message.replace(/\s*\n\s*/g, " ")}`);
      return 2;
    }
    // a system error (ENOENT, EACCES, ENOSPC, ...) is the machine's answer to the user's paths, not a bug
    if (e instanceof Error && "syscall" in e && "code" in e && typeof e.code === "string") {
      console.error(`moekit ${cmd}: ${e.message}`);
      return 2;
    }
    throw e;
  }
}
