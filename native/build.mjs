// Builds the addon with node-gyp (`node-gyp rebuild --directory native`) without network access: unless a
// node dir is configured (npm_config_nodedir / --nodedir), it points node-gyp at the headers of the running
// Node (<prefix>/include/node, shipped by official builds and distro packages), so nothing is downloaded.
// Extra arguments are passed to node-gyp. Usage: node native/build.mjs [node-gyp args...]
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);

function nodeGypScript() {
  // npm sets npm_config_node_gyp for its scripts; otherwise a local install, then the copy npm bundles.
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return fromNpm;
  try {
    return createRequire(import.meta.url).resolve("node-gyp/bin/node-gyp.js");
  } catch {
    const prefix = resolve(dirname(process.execPath), "..");
    for (const lib of [join(prefix, "lib", "node_modules"), join(dirname(process.execPath), "node_modules")]) {
      const p = join(lib, "npm", "node_modules", "node-gyp", "bin", "node-gyp.js");
      if (existsSync(p)) return p;
    }
  }
  return undefined;
}

function localNodeDir() {
  const prefix = resolve(dirname(process.execPath), "..");
  return existsSync(join(prefix, "include", "node", "node_api.h")) ? prefix : undefined;
}

const gyp = nodeGypScript();
if (gyp === undefined) {
  console.error("moekit: node-gyp not found (it ships with npm)");
  process.exit(1);
}
const gypArgs = ["rebuild", "--directory", here, ...args];
const configured = process.env.npm_config_nodedir || args.some((a) => a.startsWith("--nodedir"));
const nodedir = configured ? undefined : localNodeDir();
if (nodedir !== undefined) gypArgs.push(`--nodedir=${nodedir}`);
const r = spawnSync(process.execPath, [gyp, ...gypArgs], { stdio: "inherit" });
process.exit(r.status ?? 1);
