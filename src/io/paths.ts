// Real paths (symlinks resolved), for checks that must not be fooled by a link or a `..`.
import fs from "node:fs";
import path from "node:path";

/** The real path of `p`; for a path that does not exist yet, its nearest existing ancestor's real path plus the rest. */
export function realPathOf(p: string): string {
  const abs = path.resolve(p);
  try {
    return fs.realpathSync(abs);
  } catch {
    const parent = path.dirname(abs);
    return parent === abs ? abs : path.join(realPathOf(parent), path.basename(abs));
  }
}

/** True when `child` is `parent` or lies below it (both absolute and normalised). */
export function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === "" || (rel.split(path.sep)[0] !== ".." && !path.isAbsolute(rel));
}

/**
 * True when the real path `target` may back a file of the checkpoint folder `realDir`: inside it, or, for a
 * Hugging Face hub cache snapshot (`<repo>/snapshots/<rev>/...`), inside that repository's `blobs` folder.
 */
export function backsCheckpointFile(target: string, realDir: string): boolean {
  if (isInside(target, realDir)) return true;
  const parts = realDir.split(path.sep);
  const i = parts.lastIndexOf("snapshots");
  const isHubRepo = i > 0 && i + 1 < parts.length && /^(models|datasets|spaces)--/.test(parts[i - 1]!);
  return isHubRepo && isInside(target, path.join(parts.slice(0, i).join(path.sep) || path.sep, "blobs"));
}
