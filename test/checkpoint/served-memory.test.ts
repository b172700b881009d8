// Serve mode's resident memory, measured: loading a quantized layer allocates about 1 (int8) or 0.5 (int4) byte per
// expert weight (plus its float32 scales and the float gate), and a forward pass keeps no float copy of the experts
// (it decodes 64 rows of k at a time).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import v8 from "node:v8";
import vm from "node:vm";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { moeLayerForward, openMoeLayer } from "../../src/checkpoint/index.js";
import { normal, prngKey } from "../../src/nn/random.js";
import { captureConsole } from "../harness/console.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "moekit-served-mem-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
captureConsole();

const E = 8;
const D = 256;
const H = 512;
const WEIGHTS = 3 * E * D * H;

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;
/** Bytes of live array buffers, after collections (backing stores are freed off the main thread: let them go). */
async function arrayBytes(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 5));
  }
  return process.memoryUsage().arrayBuffers;
}

describe("serve mode: resident memory per expert weight", () => {
  const float = path.join(root, "float.safetensors");
  it.each([
    ["int8", 1],
    ["int4", 0.5],
  ] as const)("%s: loading holds about %f byte per expert weight; a forward keeps no float copy", async (mode, perWeight) => {
    if (!fs.existsSync(float))
      expect(
        await main([
          "init",
          "--preset",
          "tiny-qwen3-30b-a3b",
          "--set",
          `emb_dim=${D}`,
          "--set",
          `moe_mlp_dim=${H}`,
          "--set",
          `num_experts=${E}`,
          float,
        ]),
      ).toBe(0);
    const out = path.join(root, `${mode}.safetensors`);
    expect(await main(["quantize", "--mode", mode, float, out, "--quiet"])).toBe(0);
    const before = await arrayBytes();
    const layer = openMoeLayer(out, undefined, { overrides: { dtype: "float32" } });
    const loaded = (await arrayBytes()) - before;
    const gate = D * E * 4;
    const scales = 4 * E * (2 * H + D);
    const perExpertWeight = (loaded - gate - scales) / WEIGHTS;
    console.info(`[served memory] ${mode}: ${loaded} bytes loaded, ${perExpertWeight.toFixed(3)} per expert weight (codes alone)`);
    expect(perExpertWeight).toBeGreaterThan(perWeight * 0.95);
    expect(perExpertWeight).toBeLessThan(perWeight * 1.1);
    const x = normal(prngKey(1), [1, 4, D], "float32");
    const start = await arrayBytes();
    const y = moeLayerForward(layer, x).output;
    // a widened float32 copy of the experts, cached, would be 4 bytes per weight
    expect(((await arrayBytes()) - start) / WEIGHTS).toBeLessThan(0.05);
    expect(y.shape).toEqual([1, 4, D]);
  });
});
