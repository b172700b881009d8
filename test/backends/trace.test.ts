// The primitive trace: off unless asked; startTrace()/stopTrace() name each primitive's backend, calls and time;
// MOEKIT_TRACE=1 prints the table at exit, and another value is refused naming the variable.
import { spawnSync } from "node:child_process";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { nativeInfo } from "../../src/backends/native/index.js";
import { useBackend } from "../../src/backends/select.js";
import { formatTrace, startTrace, stopTrace } from "../../src/backends/trace.js";
import { moeConfig } from "../../src/moe/config.js";
import { RoutedMoE } from "../../src/moe/routed-moe.js";
import { normal, prngKey } from "../../src/nn/random.js";
import { testBackends } from "../harness/backends.js";

const layer = (): [RoutedMoE, ReturnType<typeof normal>] => {
  const cfg = moeConfig({ num_experts: 4, num_experts_per_tok: 2, emb_dim: 16, moe_mlp_dim: 24, dtype: "float32" });
  return [new RoutedMoE(cfg, { key: prngKey(1) }), normal(prngKey(2), [2, 5, 16])];
};

describe("the primitive trace", () => {
  afterAll(() => void useBackend("ref"));

  it("records nothing unless started", () => {
    const [moe, x] = layer();
    moe.forward(x);
    expect(stopTrace()).toEqual([]);
  });

  it.each(testBackends())("names the backend each primitive ran on (%s)", (backend) => {
    useBackend(backend);
    const [moe, x] = layer();
    startTrace();
    moe.forward(x);
    const entries = stopTrace();
    const ffn = entries.find((e) => e.prim === "expert_ffn");
    expect(ffn).toMatchObject({ backend, calls: 1 });
    expect(ffn!.ms).toBeGreaterThanOrEqual(0);
    // slowest first, and the table lists every entry under its header
    expect(entries.map((e) => e.ms)).toEqual([...entries.map((e) => e.ms)].sort((a, b) => b - a));
    const text = formatTrace(entries).split("\n");
    expect(text[0]).toMatch(/^moekit trace: \d+ primitive kinds, [\d.]+ ms in kernels$/);
    expect(text).toHaveLength(entries.length + 2);
  });

  const cli = (env: Record<string, string>): ReturnType<typeof spawnSync> =>
    spawnSync(
      process.execPath,
      ["--import", "tsx", path.join(import.meta.dirname, "../hostile/children/cli.ts"), "run", "--preset", "tiny-qwen3-30b-a3b"],
      {
        encoding: "utf8",
        env: { ...process.env, ...env },
        timeout: 60_000,
      },
    );

  it("MOEKIT_TRACE=1 prints the table when the process exits", () => {
    const r = cli({ MOEKIT_TRACE: "1" });
    expect(r.status).toBe(0);
    const backend = nativeInfo().available ? "native" : "ref";
    expect(String(r.stderr)).toMatch(/^moekit trace: \d+ primitive kinds/m);
    expect(String(r.stderr)).toMatch(new RegExp(`^expert_ffn +${backend} `, "m"));
  });

  it("another MOEKIT_TRACE value is refused, naming the variable", () => {
    const r = cli({ MOEKIT_TRACE: "yes" });
    expect(r.status).toBe(2);
    expect(String(r.stderr).split("\n")[0]).toMatch(/MOEKIT_TRACE=yes must be 0, 1 or /);
  });
});

describe("useBackend before the first primitive", () => {
  it.runIf(nativeInfo().available)("keeps the environment's native flags (they were dropped when it chose first)", () => {
    const code = [
      'import { useBackend, runtimeInfo } from "./src/backends/select.ts";',
      'useBackend("native");',
      "const n = runtimeInfo().native;",
      "console.log(JSON.stringify([n.threads, n.isa, n.bf16Path]));",
    ].join("\n");
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
      cwd: path.join(import.meta.dirname, "../.."),
      encoding: "utf8",
      env: { ...process.env, MOEKIT_THREADS: "1", MOEKIT_NATIVE_ISA: "avx2", MOEKIT_NATIVE_BF16: "widen" },
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout) as unknown).toEqual([1, nativeInfo().bestIsa === "scalar" ? "scalar" : "avx2", "widen"]);
  });

  const child = (code: string, env: Record<string, string>): ReturnType<typeof spawnSync> =>
    spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
      cwd: path.join(import.meta.dirname, "../.."),
      encoding: "utf8",
      env: { ...process.env, ...env },
      timeout: 60_000,
    });
  const select = 'import { useBackend, runtimeInfo } from "./src/backends/select.ts";';

  it("a native flag the CPU cannot honour does not stop the reference backend; useBackend() takes MOEKIT_BACKEND's choice", () => {
    const r = child(`${select} console.log(useBackend("ref"));`, { MOEKIT_NATIVE_BF16: "amx", MOEKIT_TUNE: "/nonexistent.json" });
    expect(r.status, String(r.stderr)).toBe(0);
    expect(String(r.stdout).trim()).toBe("ref");
    expect(String(child(`${select} console.log(useBackend());`, { MOEKIT_BACKEND: "ref" }).stdout).trim()).toBe("ref");
  });

  it.runIf(nativeInfo().available)("a thread count set through the API before the first primitive stays, MOEKIT_THREADS or not", () => {
    const code = `${select} import { setNativeThreads } from "./src/backends/native/index.ts"; setNativeThreads(2); useBackend("native"); console.log(runtimeInfo().native.threads);`;
    expect(String(child(code, { MOEKIT_THREADS: "1" }).stdout).trim()).toBe("2");
  });
});
