// Checks on a command's output path, made before any work: nothing the command reads may be overwritten.
import fs from "node:fs";
import path from "node:path";
import { MoeError } from "../core/errors.js";
import { isInside, realPathOf } from "../io/paths.js";
import { refuseForeignFiles } from "../io/atomic-write.js";

/** A path named on the command line, with the flag (or positional name) that named it. */
export interface NamedPath {
  flag: string;
  path: string | undefined;
}

/** True for an existing file or a non-empty folder (an empty folder is filled without --force). */
function holdsSomething(p: string): boolean {
  const stat = fs.statSync(p, { throwIfNoEntry: false });
  return stat !== undefined && (!stat.isDirectory() || fs.readdirSync(p).length > 0);
}

/**
 * Refuses an output that is, lies inside, or contains a path the command reads (compared by real path, so a
 * symlink or `..` does not hide it), and an existing output without --force.
 */
export function checkOutput(output: NamedPath & { path: string }, inputs: readonly NamedPath[], force: boolean): void {
  const out = realPathOf(output.path);
  for (const input of inputs) {
    if (input.path === undefined) continue;
    const inp = realPathOf(input.path);
    const relation = out === inp ? "is" : isInside(out, inp) ? "lies inside" : isInside(inp, out) ? "contains" : undefined;
    if (relation !== undefined) {
      throw new MoeError(
        `${output.flag} ${output.path} ${relation} ${input.flag} ${input.path}, which this command reads; write elsewhere`,
      );
    }
  }
  const folder = path.dirname(path.resolve(output.path));
  const folderStat = fs.statSync(folder, { throwIfNoEntry: false });
  if (folderStat !== undefined && !folderStat.isDirectory()) throw new MoeError(`${output.flag} ${output.path}: ${folder} is not a folder`);
  if (!force && holdsSomething(output.path)) {
    throw new MoeError(`${output.flag} ${output.path} already exists; pass --force to replace it`);
  }
  // what the write would refuse at its end, refused before the work: a folder of other files, a folder not writable
  if (fs.statSync(output.path, { throwIfNoEntry: false })?.isDirectory() === true)
    refuseForeignFiles(output.path, (problem) => {
      throw new MoeError(`${output.flag} ${output.path} ${problem}`);
    });
  let parent = folder;
  while (!fs.existsSync(parent) && path.dirname(parent) !== parent) parent = path.dirname(parent);
  try {
    fs.accessSync(parent, fs.constants.W_OK);
  } catch {
    throw new MoeError(`${output.flag} ${output.path}: cannot write into ${parent} (permission denied)`);
  }
}

/** "2 safetensors files (and model.safetensors.index.json, config.json)" for the files a writer made. */
export function dataFiles(files: readonly string[]): string {
  const data = files.filter((f) => f.endsWith(".safetensors"));
  const other = files.filter((f) => !f.endsWith(".safetensors")).map((f) => f.split(/[\\/]/).pop()!);
  return `${data.length} safetensors file${data.length === 1 ? "" : "s"}${other.length > 0 ? ` (and ${other.join(", ")})` : ""}`;
}
