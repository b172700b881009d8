// Builds the addon with node-gyp (`node-gyp rebuild --directory native`) without network access: unless a
// node dir is configured (npm_config_nodedir / --nodedir), it points node-gyp at the headers of the running
// Node (<prefix>/include/node, shipped by official builds and distro packages), so nothing is downloaded.
// Extra arguments are passed to node-gyp. Usage: node native/build.mjs [kernels|mpi] [node-gyp args...]
// Without a first argument it builds the kernels addon (its status is the exit status), then the MPI addon
// (native/mpi) when `mpicc --showme:compile` and `--showme:link` work; the MPI addon is optional and never fails
// the build: without MPI it says why and the package runs without MpiGroup.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const which = ["kernels", "mpi"].includes(process.argv[2]) ? process.argv[2] : undefined;
const args = process.argv.slice(which === undefined ? 2 : 3);

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
function build(dir) {
  const gypArgs = ["rebuild", "--directory", dir, ...args];
  const configured = process.env.npm_config_nodedir || args.some((a) => a.startsWith("--nodedir"));
  const nodedir = configured ? undefined : localNodeDir();
  if (nodedir !== undefined) gypArgs.push(`--nodedir=${nodedir}`);
  return spawnSync(process.execPath, [gyp, ...gypArgs], { stdio: "inherit" }).status ?? 1;
}

/** Why the MPI addon cannot be built here, or undefined when mpicc reports its flags. */
function mpiMissing() {
  for (const flag of ["--showme:compile", "--showme:link"]) {
    const r = spawnSync("mpicc", [flag], { encoding: "utf8" });
    if (r.error !== undefined) return "mpicc not found (install Open MPI: apt-get install openmpi-bin libopenmpi-dev)";
    if (r.status !== 0) return `\`mpicc ${flag}\` failed (${(r.stderr || r.stdout).trim()}): an Open MPI mpicc is needed`;
  }
  return undefined;
}

function buildMpi() {
  const missing = mpiMissing();
  if (missing !== undefined) {
    console.warn(`moekit: MPI addon not built: ${missing}; MpiGroup is unavailable`);
    return 1;
  }
  const status = build(join(here, "mpi"));
  if (status !== 0) console.warn("moekit: MPI addon build failed (see above); MpiGroup is unavailable");
  return status;
}

if (which === "mpi") process.exit(buildMpi());
const status = build(here);
if (which === undefined) buildMpi();
process.exit(status);
