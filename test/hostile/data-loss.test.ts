// Hostile inputs, item "nothing lost": outputs never replace what the command reads, nor an existing file
// without --force, and an interrupted write leaves the old state or the complete new one.
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { SafetensorsCheckpoint, saveShardedSafetensors, writeNpy } from "../../src/io/index.js";
import { Tensor, tensor } from "../../src/core/tensor.js";
import { snapshot, useCli, useScratch } from "./cli-harness.js";
import { writeAtomically } from "../../src/io/atomic-write.js";
import { failFor } from "../../src/io/files.js";

const cli = useCli();
const scratch = useScratch("data-loss");
const PRESET = ["--preset", "tiny-qwen3-30b-a3b"];

describe("outputs never overwrite what the command reads", () => {
  let ckpt: string;
  beforeAll(async () => {
    ckpt = scratch("ckpt");
    expect((await cli("init", ...PRESET, "--format", "hf", "--family", "qwen3_moe", ckpt)).code).toBe(0);
  });

  const cases: [string, (c: string) => string[], RegExp][] = [
    [
      "run --output onto the checkpoint's weights",
      (c) => ["run", "--checkpoint", c, "--output", path.join(c, "model.safetensors")],
      /--output .* lies inside --checkpoint .*, which this command reads/,
    ],
    [
      "run --output onto the checkpoint's weights, with --force",
      (c) => ["run", "--checkpoint", c, "--output", path.join(c, "model.safetensors"), "--force"],
      /lies inside --checkpoint/,
    ],
    [
      "run --output through a `..` path",
      (c) => ["run", "--checkpoint", c, "--output", path.join(c, "..", path.basename(c), "model.safetensors"), "--force"],
      /lies inside --checkpoint/,
    ],
    [
      "convert IN IN/model.safetensors",
      (c) => ["convert", "--from", "hf", "--to", "maxtext", c, path.join(c, "model.safetensors"), "--force", "--quiet"],
      /OUT .* lies inside IN/,
    ],
    ["convert IN IN", (c) => ["convert", "--from", "hf", "--to", "hf", c, c, "--force", "--quiet"], /OUT .* is IN/],
    [
      "convert IN to a folder holding IN",
      (c) => ["convert", "--from", "hf", "--to", "maxtext", c, path.dirname(c), "--force", "--quiet"],
      /OUT .* contains IN/,
    ],
  ];
  it.each(cases)("%s is refused and the checkpoint is unchanged", async (_, argv, message) => {
    const before = snapshot(ckpt);
    const r = await cli(...argv(ckpt));
    expect(r.code).toBe(2);
    expect(r.err.split("\n").at(-1)).toMatch(message);
    expect(snapshot(ckpt)).toEqual(before);
  });

  it("run --output through a symlink to the checkpoint's weights is refused, even with --force", async () => {
    const link = scratch("link.safetensors");
    fs.mkdirSync(path.dirname(link));
    fs.symlinkSync(path.join(ckpt, "model.safetensors"), link);
    const before = snapshot(ckpt);
    const r = await cli("run", "--checkpoint", ckpt, "--output", link, "--force");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--output .*link.safetensors lies inside --checkpoint/);
    expect(snapshot(ckpt)).toEqual(before);
  });

  it("run --output onto its own --input is refused", async () => {
    const input = scratch("x.npy");
    fs.mkdirSync(path.dirname(input));
    writeNpy(input, new Tensor(new Float32Array(2 * 64), [2, 64], "float32"));
    const r = await cli("run", "--checkpoint", ckpt, "--input", input, "--output", input, "--force");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--output .*x.npy is --input/);
  });
});

describe("an existing output is replaced only with --force", () => {
  let ckpt: string;
  beforeAll(async () => {
    ckpt = scratch("ckpt");
    expect((await cli("init", ...PRESET, ckpt)).code).toBe(0);
  });

  it("run --output onto an existing file: refused, then replaced with --force", async () => {
    const out = scratch("out.npy");
    fs.mkdirSync(path.dirname(out));
    fs.writeFileSync(out, "precious");
    const r = await cli("run", "--checkpoint", ckpt, "--output", out);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--output .*out.npy already exists; pass --force to replace it/);
    expect(fs.readFileSync(out, "utf8")).toBe("precious");
    expect((await cli("run", "--checkpoint", ckpt, "--output", out, "--force")).code).toBe(0);
    expect(fs.readFileSync(out).subarray(1, 6).toString()).toBe("NUMPY");
  });

  it("init and convert onto an existing checkpoint: refused, then replaced with --force", async () => {
    const out = scratch("again");
    expect((await cli("init", ...PRESET, out)).code).toBe(0);
    const before = snapshot(out);
    const again = await cli("init", ...PRESET, "--seed", "1", out);
    expect([again.code, again.err]).toEqual([2, expect.stringMatching(/OUT .*again already exists; pass --force/)]);
    expect(snapshot(out)).toEqual(before);
    const conv = await cli("convert", "--from", "maxtext", "--to", "maxtext", ckpt, out, "--quiet");
    expect(conv.code).toBe(2);
    expect(snapshot(out)).toEqual(before);
    expect((await cli("init", ...PRESET, "--seed", "1", "--force", out)).code).toBe(0);
    expect(snapshot(out)).not.toEqual(before);
    expect(fs.readdirSync(path.dirname(out))).toEqual(["again"]);
  });

  it("--force never replaces a folder that holds more than a checkpoint", async () => {
    const out = scratch("mixed");
    expect((await cli("init", ...PRESET, out)).code).toBe(0);
    fs.writeFileSync(path.join(out, "notes.txt"), "mine");
    const r = await cli("init", ...PRESET, "--force", out);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/holds files that are not a checkpoint's \(notes.txt\); refusing to replace it/);
    expect(r.err).not.toContain("initialising"); // refused before the layer was made
    expect(fs.readFileSync(path.join(out, "notes.txt"), "utf8")).toBe("mine");
  });

  it("the library refuses an existing file unless overwrite is set", () => {
    const file = scratch("t.npy");
    fs.mkdirSync(path.dirname(file));
    writeNpy(file, tensor([1, 2]));
    expect(() => writeNpy(file, tensor([3, 4]))).toThrow(/t.npy: already exists \(pass --force, or overwrite: true, to replace it\)/);
    writeNpy(file, tensor([3, 4]), { overwrite: true });
    expect(fs.readFileSync(file).length).toBeGreaterThan(0);
  });
});

describe("a file made at the output while it is written", () => {
  it("is refused, not replaced (the existence check ran before the write), and no temporary is left", () => {
    const dir = scratch("race");
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, "out.bin");
    const chunks = function* (): Generator<Uint8Array> {
      yield new Uint8Array(16);
      fs.writeFileSync(file, "precious"); // someone else's file, made mid-write
      yield new Uint8Array(16);
    };
    expect(() => writeAtomically(file, chunks(), failFor("npy", file))).toThrow(
      /out.bin: already exists \(it appeared while this was written/,
    );
    expect(fs.readFileSync(file, "utf8")).toBe("precious");
    expect(fs.readdirSync(dir)).toEqual(["out.bin"]);
    // with overwrite, replaced as asked
    writeAtomically(file, chunks(), failFor("npy", file), { overwrite: true });
    expect(fs.statSync(file).size).toBe(32);
  });
});

describe("a failed sharded write leaves nothing", () => {
  it("an error while encoding the 7th of 12 shards leaves no folder and no temporaries", () => {
    const dir = scratch("sharded");
    fs.mkdirSync(path.dirname(dir));
    const tensors: Record<string, Tensor> = {};
    for (let i = 0; i < 12; i++) tensors[`w${String(i).padStart(2, "0")}`] = tensor([i, 300], [2], "int32");
    // the 7th tensor does not fit the U8 storage asked for it
    expect(() => saveShardedSafetensors(dir, tensors, { maxShardBytes: 2, dtypes: { w06: "U8" } })).toThrow(
      /value 300 at index 1 does not fit U8/,
    );
    expect(fs.readdirSync(path.dirname(dir))).toEqual([]);
  });

  it("a sharded write makes the folder whole: the index and every shard, nothing else", () => {
    const dir = scratch("whole");
    fs.mkdirSync(path.dirname(dir));
    const tensors = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`w${i}`, tensor([i, i])]));
    saveShardedSafetensors(dir, tensors, { maxShardBytes: 8 });
    expect(fs.readdirSync(dir).sort()).toEqual([
      ...Array.from({ length: 5 }, (_, i) => `model-0000${i + 1}-of-00005.safetensors`),
      "model.safetensors.index.json",
    ]);
    const ckpt = SafetensorsCheckpoint.open(dir);
    expect(ckpt.keys()).toEqual(Object.keys(tensors));
    ckpt.close();
  });
});
