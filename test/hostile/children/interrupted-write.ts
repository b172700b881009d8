// Child process for the interrupted-write tests: writes 12 tensors (sharded, one per shard, or one file) and
// sends itself `signal` while encoding the 7th, as a user's Ctrl-C or a kill would arrive mid-write.
// Usage: node --import tsx interrupted-write.ts OUT sharded|single SIGTERM|SIGINT|SIGKILL
import { Tensor } from "../../../src/core/tensor.js";
import { saveSafetensors, saveShardedSafetensors } from "../../../src/io/index.js";

const [out, mode, signal] = process.argv.slice(2) as [string, "sharded" | "single", NodeJS.Signals];

class Tripwire extends Tensor {
  #fired = false;
  override get data(): Tensor["data"] {
    if (!this.#fired) {
      this.#fired = true;
      process.kill(process.pid, signal);
    }
    return super.data;
  }
}

const tensors: Record<string, Tensor> = {};
for (let i = 0; i < 12; i++) {
  const name = `w${String(i).padStart(2, "0")}`;
  const data = new Float32Array(1024).fill(i);
  tensors[name] = i === 6 ? new Tripwire(data, [1024], "float32") : new Tensor(data, [1024], "float32");
}
if (mode === "sharded") saveShardedSafetensors(out, tensors, { maxShardBytes: 4096 });
else saveSafetensors(out, tensors, { overwrite: true });
console.log("finished");
