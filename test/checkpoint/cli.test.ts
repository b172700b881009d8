// moekit convert and the run --checkpoint entry point.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { captureConsole } from "../harness/console.js";
import { Tensor } from "../../src/core/tensor.js";
import { SafetensorsCheckpoint, loadSafetensors, saveSafetensors, writeNpy } from "../../src/io/index.js";
import { convertCommand } from "../../src/cli/commands/convert.js";
import { runCheckpointCommand, wantsCheckpoint } from "../../src/cli/commands/run-checkpoint.js";
import { moeLayerForward, readHfMoeLayer } from "../../src/checkpoint/index.js";
import { DIMS, makeFixture, makeInput, relError, writeFixture } from "./fixtures.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "moekit-cli-ckpt-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;
const tmp = (name: string): string => path.join(root, `${n++}-${name}`);

const { out, err } = captureConsole();

describe("moekit convert", () => {
  const fx = makeFixture("qwen2_moe");
  const hf = writeFixture(fx, tmp("qwen2"), { maxShardBytes: 4000 });

  it("hf -> maxtext -> hf gives back the layer's bytes", async () => {
    const mt = tmp("mt");
    expect(await convertCommand(["--from", "hf", "--to", "maxtext", hf, mt, "--layer", "2", "--max-shard-bytes", "5000"])).toBe(0);
    expect(out.at(-1)).toMatch(/converted layer 2 \(qwen2_moe, gated_shared\) from hf to maxtext/);
    expect(err.some((l) => l.includes("reading layer 2"))).toBe(true);
    const back = tmp("hf-back");
    expect(await convertCommand(["--from", "maxtext", "--to", "hf", mt, back, "--quiet"])).toBe(0);
    const a = SafetensorsCheckpoint.open(hf);
    const b = SafetensorsCheckpoint.open(back);
    for (const name of b.keys()) expect(Buffer.from(b.getRaw(name).bytes).equals(Buffer.from(a.getRaw(name).bytes)), name).toBe(true);
    expect(b.keys().every((k) => k.startsWith("model.layers.2.mlp."))).toBe(true);
    a.close();
    b.close();
  });

  it("maxtext -> hf of another family checks that the family computes the same thing", async () => {
    const mt = tmp("mt.safetensors");
    await convertCommand(["--from", "hf", "--to", "maxtext", hf, mt, "--quiet"]);
    await expect(
      convertCommand(["--from", "maxtext", "--to", "hf", mt, tmp("as-mixtral"), "--family", "mixtral", "--quiet"]),
    ).rejects.toThrow(/cannot express|no mixtral equivalent/);
    // a Mixtral layer re-expressed as Granite (same routing rule, fused input_linear) runs identically
    const mix = writeFixture(makeFixture("mixtral"), tmp("mixtral"));
    const mixMt = tmp("mix.safetensors");
    await convertCommand(["--from", "hf", "--to", "maxtext", mix, mixMt, "--layer", "1", "--quiet"]);
    const granite = tmp("granite");
    expect(await convertCommand(["--from", "maxtext", "--to", "hf", mixMt, granite, "--family", "granitemoe", "--quiet"])).toBe(0);
    const F64 = { overrides: { dtype: "float64", weight_dtype: "float64" } };
    const { x } = makeInput(1, 4, DIMS.D);
    const a = moeLayerForward(readHfMoeLayer(mix, 1, F64), x).output;
    const g = moeLayerForward(readHfMoeLayer(granite, 1, F64), x).output;
    expect(relError(g.data, [Array.from(a.data)])).toBeLessThan(1e-12);
  });

  it("bad arguments are errors", async () => {
    await expect(convertCommand(["--from", "onnx", "--to", "hf", "a", "b"])).rejects.toThrow(/--from must be hf or maxtext/);
    await expect(convertCommand(["--from", "hf", "--to", "hf", "a"])).rejects.toThrow(/expects IN and OUT/);
    await expect(convertCommand(["--from", "hf", "--to", "hf", hf, tmp("x"), "--family", "bert"])).rejects.toThrow(/--family bert/);
    expect(await convertCommand(["--help"])).toBe(0);
  });
});

describe("moekit run --checkpoint", () => {
  const fx = makeFixture("gpt_oss");
  const hf = writeFixture(fx, tmp("gptoss"));

  it("wantsCheckpoint recognises the flag", () => {
    expect(wantsCheckpoint(["--checkpoint", "x"])).toBe(true);
    expect(wantsCheckpoint(["--checkpoint=x"])).toBe(true);
    expect(wantsCheckpoint(["--preset", "tiny-mixtral-8x7b"])).toBe(false);
  });

  it("runs a layer on an .npy input, writes the output, reports routing (json)", async () => {
    const { rows, x } = makeInput(2, 3, DIMS.D);
    const input = tmp("x.npy");
    writeNpy(input, x);
    const output = tmp("y.safetensors");
    expect(
      await runCheckpointCommand([
        "--checkpoint",
        hf,
        "--layer",
        "1",
        "--input",
        input,
        "--output",
        output,
        "--set",
        "dtype=float64",
        "--json",
      ]),
    ).toBe(0);
    const report = JSON.parse(out.join("\n")) as {
      layer: number;
      module: string;
      family: string;
      tokensPerExpert: number[];
      input: number[];
    };
    expect(report).toMatchObject({ layer: 1, module: "routed", family: "gpt_oss", input: [2, 3, 16] });
    expect(report.tokensPerExpert.reduce((a, b) => a + b, 0)).toBe(2 * 3 * 2);
    const y = loadSafetensors(output);
    expect(y.output!.shape).toEqual([2, 3, 16]);
    expect(y.topk_indices!.dtype).toBe("int32");
    const layer1 = makeFixture("gpt_oss");
    expect(relError(y.output!.data, layer1.reference(rows))).toBeLessThan(1e-9);
  });

  it("text report with progress on stderr; random input by default; [T,D] safetensors input", async () => {
    expect(await runCheckpointCommand(["--checkpoint", hf, "--seq", "4"])).toBe(0);
    expect(out.join("\n")).toMatch(/tokens\/expert/);
    expect(err.some((l) => l.includes("forward on x [1,4,16] float32"))).toBe(true);
    const input = tmp("x.safetensors");
    saveSafetensors(input, { input: new Tensor(new Float32Array(5 * 16).fill(0.5), [5, 16], "float32") });
    expect(await runCheckpointCommand(["--checkpoint", hf, "--input", input, "--json"])).toBe(0);
    const report = JSON.parse(out.at(-1)!) as { input: number[] };
    expect(report.input).toEqual([1, 5, 16]);
  });

  it("errors: no checkpoint, wrong input width", async () => {
    await expect(runCheckpointCommand([])).rejects.toThrow(/give --checkpoint/);
    const input = tmp("bad.npy");
    writeNpy(input, new Tensor(new Float32Array(12), [3, 4], "float32"));
    await expect(runCheckpointCommand(["--checkpoint", hf, "--input", input])).rejects.toThrow(/expected \[B,S,16\]/);
  });
});
