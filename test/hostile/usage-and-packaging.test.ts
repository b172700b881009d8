// Hostile inputs, item "packaging and usage": every command answers --help, negative numbers reach the flag's own
// check (never taken for a flag), the README's example config runs, and the package names only files that exist.
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { useCli, useScratch } from "./cli-harness.js";

const cli = useCli();
const scratch = useScratch("usage");
const root = path.join(import.meta.dirname, "..", "..");
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as {
  files: string[];
  license: string;
  bin: Record<string, string>;
  main: string;
};

/** The command table of `moekit --help`: the two-space indented names after "Commands:". */
async function commandTable(): Promise<string[]> {
  const r = await cli("--help");
  expect(r.code).toBe(0);
  const table = r.out.split("Commands:\n")[1]!.split("\n\n")[0]!;
  return [...table.matchAll(/^ {2}(\w+)/gm)].map((m) => m[1]!);
}

describe("--help", () => {
  it("the command table lists the eight commands", async () => {
    expect(await commandTable()).toEqual(["check", "run", "convert", "quantize", "init", "presets", "info", "tune"]);
  });

  it("every command of the table prints its usage and exits 0 with --help and with -h", async () => {
    for (const command of await commandTable()) {
      for (const flag of ["--help", "-h"]) {
        const r = await cli(command, flag);
        expect([command, flag, r.code, r.err]).toEqual([command, flag, 0, ""]);
        expect(r.out.split("\n")[0]).toMatch(new RegExp(`^Usage: moekit ${command}\\b`));
      }
    }
  });

  it("run --checkpoint PATH --help prints the checkpoint usage", async () => {
    const r = await cli("run", "--checkpoint", "anything", "--help");
    expect([r.code, r.out.split("\n")[0]]).toEqual([0, "Usage: moekit run --checkpoint PATH [options]"]);
  });
});

describe("negative numbers are values, refused or taken by the flag's own check", () => {
  let hf: string;
  beforeAll(async () => {
    hf = scratch("hf");
    expect((await cli("init", "--preset", "tiny-qwen3-30b-a3b", "--format", "hf", "--family", "qwen3_moe", hf)).code).toBe(0);
  });
  const TINY = ["run", "--preset", "tiny-qwen3-30b-a3b"];
  const cases: [string, () => string[], string][] = [
    ["run --seed -3", () => [...TINY, "--seed", "-3"], 'moekit run: --seed must be an integer >= 0, got "-3"'],
    ["run --batch -1", () => [...TINY, "--batch", "-1"], 'moekit run: --batch must be an integer >= 1, got "-1"'],
    ["run --seq -0.5", () => [...TINY, "--seq", "-0.5"], 'moekit run: --seq must be an integer >= 1, got "-0.5"'],
    ["run --max-params -1e3", () => [...TINY, "--max-params", "-1e3"], 'moekit run: --max-params must be an integer >= 0, got "-1e3"'],
    ["run --max-memory -5", () => [...TINY, "--max-memory", "-5"], 'moekit run: --max-memory must be an integer >= 1, got "-5"'],
    ["run --set -1 (a value, not KEY=VALUE)", () => [...TINY, "--set", "-1"], 'moekit run: --set expects KEY=VALUE, got "-1"'],
    [
      "run --checkpoint --layer -1",
      () => ["run", "--checkpoint", hf, "--layer", "-1"],
      'moekit run: --layer must be an integer >= 0, got "-1"',
    ],
    [
      "run --checkpoint --seed -3",
      () => ["run", "--checkpoint", hf, "--seed", "-3"],
      'moekit run: --seed must be an integer >= 0, got "-3"',
    ],
    [
      "convert --max-shard-bytes -1",
      () => ["convert", "--from", "hf", "--to", "hf", "--max-shard-bytes", "-1", hf, scratch("never")],
      'moekit convert: --max-shard-bytes must be an integer >= 1, got "-1"',
    ],
    [
      "init --seed -1",
      () => ["init", "--preset", "tiny-qwen3-30b-a3b", "--seed", "-1", scratch("never")],
      'moekit init: --seed must be an integer >= 0, got "-1"',
    ],
  ];
  it.each(cases)("%s", async (_, argv, message) => {
    const r = await cli(...argv());
    expect([r.code, r.err]).toEqual([2, message]);
  });

  it("--set KEY=-1 gives the key a negative value (capacity_factor=-1: no capacity limit)", async () => {
    const r = await cli(...TINY, "--set", "capacity_factor=-1", "--set", "sparse_matmul=false", "--json");
    expect(r.code).toBe(0);
    expect((JSON.parse(r.out) as { droppedAssignments: number; expertCapacity: unknown }).expertCapacity).toBeNull();
  });

  it("a value that is not a number keeps parseArgs' explanation, on one line", async () => {
    const r = await cli(...TINY, "--batch", "-x");
    expect([r.code, r.err]).toEqual([
      2,
      "moekit run: Option '--batch' argument is ambiguous. Did you forget to specify the option argument for '--batch'? To specify an option argument starting with a dash use '--batch=-XYZ'.",
    ]);
  });
});

describe("the README's example config", () => {
  it("examples/my-moe.yaml is named by the README and runs through the CLI", async () => {
    expect(fs.readFileSync(path.join(root, "README.md"), "utf8")).toContain("moekit run --config examples/my-moe.yaml");
    const r = await cli("run", "--config", path.join(root, "examples", "my-moe.yaml"), "--json");
    expect([r.code, r.err]).toEqual([0, ""]);
    const report = JSON.parse(r.out) as { input: number[]; tokensPerExpert: number[]; routedAssignments: number };
    expect(report.input).toEqual([2, 8, 64]);
    expect(report.tokensPerExpert).toHaveLength(8);
    expect(report.tokensPerExpert.reduce((a, b) => a + b, 0)).toBe(report.routedAssignments);
  });
});

describe("the package", () => {
  it("package.json `files` names only paths that exist (dist is the build's output folder)", () => {
    const tsconfig = fs.readFileSync(path.join(root, "tsconfig.json"), "utf8");
    expect(tsconfig).toMatch(/"outDir": "dist"/);
    const missing = pkg.files.filter((f) => f !== "dist" && !fs.existsSync(path.join(root, f)));
    expect(missing).toEqual([]);
    expect(pkg.files).toContain("examples");
    expect(pkg.main.startsWith("./dist/")).toBe(true);
  });

  it("the bin script exists, and LICENSE is the Apache License 2.0 that package.json names", () => {
    for (const bin of Object.values(pkg.bin)) expect(fs.existsSync(path.join(root, bin))).toBe(true);
    expect(pkg.license).toBe("Apache-2.0");
    const license = fs.readFileSync(path.join(root, "LICENSE"), "utf8");
    expect(license).toMatch(/^\s*Apache License\s+Version 2\.0, January 2004\s+http:\/\/www\.apache\.org\/licenses\/\s/);
    expect(license).toContain("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION");
    expect(license).toContain("END OF TERMS AND CONDITIONS");
  });
});
