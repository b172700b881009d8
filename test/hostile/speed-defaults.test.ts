// Hostile inputs, item "speed trap in the defaults": MaxText's default dtype (bfloat16) runs as configured, on the
// native backend's fused bfloat16 kernel (bench/RESULTS.md has its speed against float32), and `run` names the
// backend that actually ran.
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
  it("MaxText's default dtype (bfloat16) is run as configured: bfloat16 activations, float32 weights, no dtype note", async () => {
    const f = configFile();
    expect(await report("--config", f)).toMatchObject({ dtype: "bfloat16", weightDtype: "float32" });
    const r = await cli("run", "--config", f);
    expect(r.err).not.toMatch(/dtype/);
    expect(r.out).toMatch(/^forward +[\d.]+ ms \(\w+ backend, bfloat16 activations, float32 weights\)$/m);
  });

  it("--repeat N reports the first forward and the median of the others", async () => {
    const f = configFile();
    const j = await report("--config", f, "--repeat", "3");
    expect(j.forwardMs).toBeGreaterThan(0);
    expect(j.repeatedForwardMs).toBeGreaterThan(0);
    expect((await report("--config", f)).repeatedForwardMs).toBeNull();
    expect((await cli("run", "--config", f, "--repeat", "3")).out).toMatch(/^forward +[\d.]+ ms, then [\d.]+ ms \(median of 2 more\) \(/m);
    const bad = await cli("run", "--config", f, "--repeat", "0");
    expect(bad.code).toBe(2);
    expect(bad.err.split("\n")[0]).toMatch(/--repeat/);
  });

  it("a float32 layer and a float64 layer run as configured", async () => {
    expect(await report("--config", configFile({ dtype: "float32" }))).toMatchObject({ dtype: "float32", weightDtype: "float32" });
    expect(await report("--config", configFile({ dtype: "float64", weight_dtype: "float64" }))).toMatchObject({ dtype: "float64" });
  });

  it("weight_dtype bfloat16 stays bfloat16", async () => {
    expect(await report("--config", configFile({ weight_dtype: "bfloat16" }))).toMatchObject({
      dtype: "bfloat16",
      weightDtype: "bfloat16",
    });
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
