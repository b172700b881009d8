// Hostile inputs, item "speed trap in the defaults": MaxText's default dtype (bfloat16) is not silently run on
// the slow op composition, and `run` names the backend that actually ran.
import fs from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { testBackends } from "../harness/backends.js";
import { useCli, useScratch } from "./cli-harness.js";

const cli = useCli();
const scratch = useScratch("speed");

/** A small layer config with MaxText's defaults for everything else (dtype bfloat16, weight_dtype float32). */
function configFile(extra: Record<string, unknown> = {}): string {
  const f = scratch("layer.json");
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, JSON.stringify({ emb_dim: 32, moe_mlp_dim: 48, num_experts: 4, num_experts_per_tok: 2, ...extra }));
  return f;
}

async function report(...argv: string[]): Promise<Record<string, unknown>> {
  const r = await cli("run", ...argv, "--json");
  expect(r.code).toBe(0);
  return JSON.parse(r.out) as Record<string, unknown>;
}

describe("moekit run and MaxText's default dtype", () => {
  it("MaxText's default dtype (bfloat16) runs with float32 activations and bfloat16 weights, and says so in one line", async () => {
    const f = configFile();
    expect(await report("--config", f)).toMatchObject({ dtype: "float32", weightDtype: "bfloat16" });
    const r = await cli("run", "--config", f);
    const notes = r.err.split("\n").filter((l) => l.includes("dtype=bfloat16"));
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(
      /float32 activations and bfloat16 weights \(set dtype: bfloat16 in the config or --set dtype=bfloat16 to keep them\)/,
    );
  });

  it("a dtype: bfloat16 the config names is run as given, without the note", async () => {
    const f = configFile({ dtype: "bfloat16" });
    expect(await report("--config", f)).toMatchObject({ dtype: "bfloat16", weightDtype: "float32" });
    expect((await cli("run", "--config", f)).err).not.toMatch(/no fused kernel/);
  });

  it("--set dtype=bfloat16 keeps MaxText's bfloat16 activations, without the note", async () => {
    const f = configFile();
    expect(await report("--config", f, "--set", "dtype=bfloat16")).toMatchObject({ dtype: "bfloat16", weightDtype: "float32" });
    expect((await cli("run", "--config", f, "--set", "dtype=bfloat16")).err).not.toMatch(/no fused kernel/);
  });

  it("a float32 layer and a float64 layer run as configured", async () => {
    expect(await report("--config", configFile({ dtype: "float32" }))).toMatchObject({ dtype: "float32", weightDtype: "float32" });
    expect(await report("--config", configFile({ dtype: "float64", weight_dtype: "float64" }))).toMatchObject({ dtype: "float64" });
  });

  it("weight_dtype bfloat16 stays bfloat16", async () => {
    expect(await report("--config", configFile({ weight_dtype: "bfloat16" }))).toMatchObject({ dtype: "float32", weightDtype: "bfloat16" });
  });
});

describe("moekit run names the backend that ran", () => {
  const saved = process.env.MOEKIT_BACKEND;
  afterEach(() => {
    if (saved === undefined) delete process.env.MOEKIT_BACKEND;
    else process.env.MOEKIT_BACKEND = saved;
  });

  it.each(testBackends())("MOEKIT_BACKEND=%s", async (backend) => {
    process.env.MOEKIT_BACKEND = backend;
    const r = await cli("run", "--preset", "tiny-qwen3-30b-a3b");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`^forward +[\\d.]+ ms \\(${backend} backend, float32 activations`, "m"));
    expect((await report("--preset", "tiny-qwen3-30b-a3b")).backend).toBe(backend);

    const ckpt = scratch("ckpt");
    expect((await cli("init", "--preset", "tiny-qwen3-30b-a3b", "--format", "hf", "--family", "qwen3_moe", ckpt)).code).toBe(0);
    expect((await cli("run", "--checkpoint", ckpt)).out).toMatch(new RegExp(`^load .* ms \\(${backend} backend\\)$`, "m"));
  });
});
