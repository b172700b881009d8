import { mkdtempSync, writeFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { captureConsole } from "../harness/console.js";
import { main } from "../../src/cli/main.js";

const { out, err } = captureConsole();

const golden = join(import.meta.dirname, "../../fixtures/golden");

describe("moekit CLI", () => {
  it("check: one PASS line per case and exit 0", async () => {
    const code = await main(["check", join(golden, "p01_mixtral_sparse_softmax.json"), join(golden, "p26_ring_ep2.json")]);
    expect(code).toBe(0);
    expect(out.filter((l) => l.startsWith("PASS"))).toHaveLength(2);
    expect(out.at(-1)).toBe("2 passed, 0 failed");
  });

  it("check: a corrupted expectation fails with exit 1 and names the tensor", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moekit-cli-"));
    const src = JSON.parse(
      (await import("node:fs")).readFileSync(join(golden, "p02_mixtral_dense_nodrop.json"), "utf8").replace(/Infinity/g, "1e999"),
    ) as {
      tensors: Record<string, { data: number[] }>;
    };
    src.tensors.grad_wo!.data[3]! += 0.5;
    writeFileSync(join(dir, "bad.json"), JSON.stringify(src));
    const code = await main(["check", dir]);
    expect(code).toBe(1);
    expect(out[0]).toMatch(/^FAIL .*grad_wo/);
  });

  it("check --json reports every tensor", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moekit-cli-"));
    copyFileSync(join(golden, "p03_dense_capacity_drop_training.json"), join(dir, "a.json"));
    expect(await main(["check", "--json", dir])).toBe(0);
    const doc = JSON.parse(out.join("\n")) as { passed: number; cases: { checks: { name: string }[] }[] };
    expect(doc.passed).toBe(1);
    expect(doc.cases[0]!.checks.map((c) => c.name)).toContain("kept_mask");
  });

  it("check: a missing path is a usage error", async () => {
    expect(await main(["check", "/nonexistent/case.json"])).toBe(2);
    expect(err.join("\n")).toMatch(/no such file/);
  });

  it("run --preset prints routing statistics", async () => {
    expect(await main(["run", "--preset", "tiny-mixtral-8x7b", "--set", "load_balance_loss_weight=0.01", "--json"])).toBe(0);
    const r = JSON.parse(out.join("\n")) as { tokensPerExpert: number[]; routedAssignments: number; lbLoss: number };
    expect(r.tokensPerExpert.reduce((a, b) => a + b, 0)).toBe(r.routedAssignments);
    expect(r.lbLoss).toBeGreaterThan(0);
  });

  it("run: dropped assignments on the dense capacity path", async () => {
    expect(
      await main(["run", "--preset", "tiny-mixtral-8x7b", "--set", "sparse_matmul=false", "--set", "capacity_factor=0.5", "--json"]),
    ).toBe(0);
    const r = JSON.parse(out.join("\n")) as { droppedAssignments: number; expertCapacity: number };
    expect(r.droppedAssignments).toBeGreaterThan(0);
    expect(r.expertCapacity).toBe(1);
  });

  it("run: a bad override names the key", async () => {
    expect(await main(["run", "--preset", "tiny-mixtral-8x7b", "--set", "num_experts_per_tok=99"])).toBe(2);
    expect(err.join("\n")).toMatch(/num_experts_per_tok=99/);
  });

  it("run: a full-size preset is refused on the reference backend", async () => {
    expect(await main(["run", "--preset", "deepseek3-671b"])).toBe(2);
    expect(err.join("\n")).toMatch(/tiny-deepseek3-671b/);
  });

  it("presets lists every MaxText preset and its tiny twin", async () => {
    expect(await main(["presets"])).toBe(0);
    const text = out.join("\n");
    for (const p of [
      "mixtral-8x7b",
      "deepseek3-671b-batchsplit",
      "gemma4-26b",
      "gpt-oss-120b",
      "llama4-17b-128e",
      "qwen3-235b-a22b",
      "tiny-kimi-k2-1t",
    ])
      expect(text).toContain(p);
  });

  it("init writes a preset's layer; run --checkpoint and convert read it back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moekit-init-"));
    expect(await main(["init", "--preset", "tiny-qwen3-30b-a3b", "--format", "hf", "--family", "qwen3_moe", join(dir, "hf")])).toBe(0);
    expect(await main(["run", "--checkpoint", join(dir, "hf"), "--json"])).toBe(0);
    const r = JSON.parse(out.filter((l) => l.trim().startsWith("{") || l.includes("\n")).at(-1)!) as { tokensPerExpert: number[] };
    expect(r.tokensPerExpert.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(await main(["convert", "--from", "hf", "--to", "maxtext", join(dir, "hf"), join(dir, "mt.safetensors")])).toBe(0);
    expect(
      await main(["convert", "--from", "maxtext", "--to", "hf", "--family", "qwen3_moe", join(dir, "mt.safetensors"), join(dir, "hf2")]),
    ).toBe(0);
    const { readFileSync } = await import("node:fs");
    expect(Buffer.compare(readFileSync(join(dir, "hf", "model.safetensors")), readFileSync(join(dir, "hf2", "model.safetensors")))).toBe(0);
  });

  it("convert to HF says that load_balance_loss_weight, which config.json does not carry, is dropped", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moekit-lb-"));
    expect(await main(["init", "--preset", "tiny-qwen3-235b-a22b", join(dir, "x.safetensors")])).toBe(0);
    err.length = 0;
    expect(
      await main(["convert", "--from", "maxtext", "--to", "hf", "--family", "qwen3_moe", join(dir, "x.safetensors"), join(dir, "h")]),
    ).toBe(0);
    expect(err.join("\n")).toContain(
      "note: load_balance_loss_weight=0.001 (a training setting, not the layer's output) is not in config.json",
    );
  });

  it("a generated config.json names bfloat16 tensors' dtype (torch_dtype)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moekit-bf16-"));
    const args = ["init", "--preset", "tiny-mixtral-8x7b", "--format", "hf", "--family", "mixtral"];
    expect(await main([...args, "--set", "weight_dtype=bfloat16", join(dir, "b")])).toBe(0);
    expect(await main([...args, join(dir, "f")])).toBe(0);
    const { readFileSync } = await import("node:fs");
    const dtypeOf = (d: string): unknown =>
      (JSON.parse(readFileSync(join(dir, d, "config.json"), "utf8")) as { torch_dtype: unknown }).torch_dtype;
    expect([dtypeOf("b"), dtypeOf("f")]).toEqual(["bfloat16", "float32"]);
  });

  it("info names the backend in use", async () => {
    expect(await main(["info", "--json"])).toBe(0);
    const info = JSON.parse(out.join("\n")) as { backend: string; threads: number; bf16Path: string; blocking: string; tuning: string };
    expect(["native", "ref"]).toContain(info.backend);
    expect(["widen", "dpbf16", "amx", "-"]).toContain(info.bf16Path);
    // with the addon: the cache sizes the blocking came from, the fp32 kind's tile and blocks, and where they came from
    if (info.bf16Path !== "-") {
      expect(info.blocking).toMatch(/^l1d \d+ KiB, l2 \d+ KiB; f32 mr \d+ nr \d+ kc \d+ mc \d+ nc \d+ \((model|set)\)/);
      expect(info.tuning).toMatch(/^(model|file )/);
    }
  });

  it("unknown commands and --help", async () => {
    expect(await main(["frobnicate"])).toBe(2);
    expect(await main(["--help"])).toBe(0);
    expect(out.join("\n")).toContain("check <file-or-dir>");
  });
});
