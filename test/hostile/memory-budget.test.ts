// Hostile inputs, item "bounded memory": run, init and the module constructors estimate what a layer allocates
// and refuse above the budget (default: a fraction of free memory; --max-memory / setMemoryBudget), naming the
// estimate and the flag, before allocating anything.
import fs from "node:fs";
import os from "node:os";
import { afterEach, describe, expect, it, vi } from "vitest";
import { MoeError } from "../../src/core/errors.js";
import { checkMemory, memoryBudget, setMemoryBudget } from "../../src/core/memory.js";
import { moeConfig } from "../../src/moe/config.js";
import { RoutedMoE } from "../../src/moe/routed-moe.js";
import { RoutedAndSharedMoE } from "../../src/moe/routed-and-shared-moe.js";
import { useCli, useScratch } from "./cli-harness.js";

const cli = useCli();
const scratch = useScratch("memory");
const TINY = ["--preset", "tiny-qwen3-30b-a3b"];
const REFUSED =
  /^moekit (run|init): \[(run|init)\] needs about [\d.]+ [kMGTPE]?B \(weights [^)]*\), over the memory budget of [\d.]+ [kMGTPE]?B \((.*)\); raise it with --max-memory BYTES/;

/** The first line of stderr that is not progress. */
const errorLine = (err: string): string => err.split("\n").find((l) => l.startsWith("moekit ")) ?? err;

describe("the CLI refuses layers over the memory budget", () => {
  it("run --batch 100000 --seq 100000 is a one-line error, not an allocation RangeError (default budget)", async () => {
    const r = await cli("run", ...TINY, "--batch", "100000", "--seq", "100000");
    expect(r.code).toBe(2);
    expect(errorLine(r.err)).toMatch(REFUSED);
    expect(errorLine(r.err)).toMatch(/activations [\d.]+ TB.*\(75% of free memory\)/);
  });

  it("run --batch 4096 --seq 4096 over --max-memory 4e9 is refused, naming the flag's value", async () => {
    const r = await cli("run", ...TINY, "--batch", "4096", "--seq", "4096", "--max-memory", "4e9");
    expect(r.code).toBe(2);
    expect(errorLine(r.err)).toMatch(REFUSED);
    expect(errorLine(r.err)).toContain("over the memory budget of 4.00 GB (--max-memory 4e9)");
  });

  it("init --preset deepseek3-671b over the budget is refused before allocating", async () => {
    const r = await cli("init", "--preset", "deepseek3-671b", "--max-memory", "8e9", scratch("never"));
    expect(r.code).toBe(2);
    expect(errorLine(r.err)).toMatch(
      /^moekit init: \[init\] needs about 75.3 GB \(weights 45.3 GB, initialiser temporaries 30.1 GB\), over the memory budget of 8.00 GB \(--max-memory 8e9\)/,
    );
  });

  it("run --checkpoint with a huge --batch/--seq is refused", async () => {
    const ckpt = scratch("ckpt");
    expect((await cli("init", ...TINY, "--format", "hf", "--family", "qwen3_moe", ckpt)).code).toBe(0);
    const r = await cli("run", "--checkpoint", ckpt, "--batch", "4096", "--seq", "4096", "--max-memory", "1e9");
    expect(r.code).toBe(2);
    expect(errorLine(r.err)).toMatch(
      /^moekit run: \[run\] needs about [\d.]+ GB \(activations [\d.]+ GB, input [\d.]+ GB\), over the memory budget of 1.00 GB \(--max-memory 1e9\)/,
    );
  });

  it("convert (both ways) and run --checkpoint refuse a layer from its headers, before reading it", async () => {
    const hf = scratch("hf");
    expect((await cli("init", ...TINY, "--format", "hf", "--family", "qwen3_moe", hf)).code).toBe(0);
    const mt = scratch("layer.safetensors");
    expect((await cli("convert", "--from", "hf", "--to", "maxtext", hf, mt, "--quiet")).code).toBe(0);
    const never = scratch("never");
    const refusals: [string[], string][] = [
      [["convert", "--from", "hf", "--to", "maxtext", hf, never], hf],
      [["convert", "--from", "maxtext", "--to", "hf", mt, never], mt],
      [["run", "--checkpoint", hf], hf],
    ];
    for (const [argv, where] of refusals) {
      const r = await cli(...argv, "--max-memory", "1000");
      expect(r.code).toBe(2);
      expect(errorLine(r.err)).toMatch(
        new RegExp(
          `^moekit ${argv[0]}: \\[checkpoint ${where}\\] needs about [\\d.]+ kB \\(layer tensors [\\d.]+ kB, .*\\(--max-memory 1000\\)`,
        ),
      );
    }
    expect(fs.existsSync(never)).toBe(false);
  });

  it("a layer within --max-memory runs, and the budget does not outlive the command", async () => {
    expect((await cli("run", ...TINY, "--max-memory", "1e8")).code).toBe(0);
    expect((await cli("run", ...TINY, "--max-memory", "1000")).code).toBe(2);
    expect((await cli("run", ...TINY)).code).toBe(0);
  });

  it.each(["abc", "", "1.5", "0", "-1", "1e400", "8G"])("--max-memory=%j is an error naming the flag", async (v) => {
    for (const argv of [
      ["run", ...TINY],
      ["init", ...TINY, scratch("never")],
    ]) {
      const r = await cli(...argv, `--max-memory=${v}`);
      expect([r.code, errorLine(r.err)]).toEqual([2, `moekit ${argv[0]}: --max-memory must be an integer >= 1, got ${JSON.stringify(v)}`]);
    }
  });
});

describe("module constructors refuse configs over the memory budget", () => {
  afterEach(() => setMemoryBudget(undefined));
  const huge = { emb_dim: 7168, moe_mlp_dim: 2048, num_experts: 256, num_experts_per_tok: 8, dtype: "float32" };

  it("RoutedMoE", () => {
    setMemoryBudget(1e9);
    expect(() => new RoutedMoE(moeConfig(huge))).toThrow(MoeError);
    expect(() => new RoutedMoE(moeConfig(huge))).toThrow(
      /^\[RoutedMoE\] needs about 75.\d GB \(weights 45.\d GB, initialiser temporaries 30.1 GB\), over the memory budget of 1.00 GB \(setMemoryBudget\(\)\)/,
    );
  });

  it("RoutedAndSharedMoE counts its shared MLP", () => {
    setMemoryBudget(1e9);
    const cfg = moeConfig({ ...huge, shared_experts: 1, decoder_block: "deepseek" });
    expect(() => new RoutedAndSharedMoE(cfg)).toThrow(/^\[RoutedAndSharedMoE\] needs about 75.\d GB \(weights 45.\d GB/);
  });

  it("with the default budget, a petabyte layer is refused at once", () => {
    const t0 = performance.now();
    expect(() => new RoutedMoE(moeConfig({ ...huge, emb_dim: 1 << 20, moe_mlp_dim: 1 << 20 }))).toThrow(/PB.*\(75% of free memory\)/);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("small layers construct, and the default budget follows free memory", () => {
    expect(
      new RoutedMoE(moeConfig({ ...huge, emb_dim: 16, moe_mlp_dim: 16, num_experts: 4, num_experts_per_tok: 2 })).numParameters(),
    ).toBeGreaterThan(0);
    expect(memoryBudget().source).toBe("75% of free memory");
    expect(() => setMemoryBudget(Number.NaN)).toThrow(/^\[memory\] the budget must be a positive number of bytes/);
  });

  it("a free-memory reading serves small estimates for a second; one near the budget reads again", () => {
    const free = vi.spyOn(os, "freemem").mockReturnValue(8e9);
    try {
      memoryBudget(); // a fresh reading: 6 GB
      const reads = free.mock.calls.length;
      for (let i = 0; i < 5; i++) checkMemory("small", { activations: 1e6 });
      expect(free.mock.calls.length).toBe(reads);
      free.mockReturnValue(4e9); // memory taken meanwhile: an estimate over half the old budget reads it, and is refused
      expect(() => checkMemory("near", { activations: 3.5e9 })).toThrow(/over the memory budget of 3.00 GB/);
      expect(free.mock.calls.length).toBe(reads + 1);
      checkMemory("small", { activations: 1e6 });
      expect(free.mock.calls.length).toBe(reads + 1);
    } finally {
      free.mockRestore();
    }
  });
});
