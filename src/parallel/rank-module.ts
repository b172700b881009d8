// The function each rank of runWorkers / runMpi runs: the default export of the module the caller named.
import { pathToFileURL } from "node:url";
import { MoeError } from "../core/errors.js";
import type { Group } from "./group.js";

export type RankFunction = (group: Group, args: unknown) => unknown;

/** `module`'s default export (a path or file: URL), refused by name when it is not a function. */
export async function rankFunction(module: string): Promise<RankFunction> {
  const mod = (await import(module.startsWith("file:") ? module : pathToFileURL(module).href)) as { default?: unknown };
  if (typeof mod.default !== "function")
    throw new MoeError(`[ranks] ${module} has no default export function (group, args) => result, which each rank runs`);
  return mod.default as RankFunction;
}
