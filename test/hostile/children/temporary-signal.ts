// Child process for the cleanup-registry test: holds a registered temporary file and folder, says "ready",
// then waits for the parent's signal (which must remove both and end the process by that signal).
// Usage: node --import tsx temporary-signal.ts DIR
import fs from "node:fs";
import path from "node:path";
import { temporaryName, trackTemporary } from "../../../src/io/temporaries.js";

const dir = process.argv[2]!;
const file = temporaryName(path.join(dir, "out.safetensors"));
const folder = temporaryName(path.join(dir, "shards"));
trackTemporary(file);
trackTemporary(folder);
fs.writeFileSync(file, "partial");
fs.mkdirSync(folder);
fs.writeFileSync(path.join(folder, "model-00001-of-00002.safetensors"), "partial");
console.log("ready");
setTimeout(() => console.log("not interrupted"), 20_000);
