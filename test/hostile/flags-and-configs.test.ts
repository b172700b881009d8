// Hostile inputs, item "strict parsing": numeric flags, conflicting options, keys spelled twice, and
// config.json sizes are refused with the flag or key named, before anything is allocated.
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { hfConfigToMaxText } from "../../src/checkpoint/index.js";
import { ConfigError } from "../../src/core/errors.js";
import { moeConfig } from "../../src/moe/config.js";
import { runChild, useCli, useScratch } from "./cli-harness.js";

const cli = useCli();
const scratch = useScratch("flags");
const TINY = ["--preset", "tiny-qwen3-30b-a3b"];

let hf: string;
beforeAll(async () => {
  hf = scratch("hf");
  expect((await cli("init", ...TINY, "--format", "hf", "--family", "qwen3_moe", hf)).code).toBe(0);
});

const BAD_NUMBERS = ["abc", "", "1.5", "0x10", " 5", "5 ", "1e400", "Infinity", "NaN", "-1", "9007199254740993"];

describe("numeric flags are parsed strictly", () => {
  // the values go as --flag=value, so that "-1" reaches the parser rather than parseArgs' ambiguity check
  const commands: [string, string, () => string[]][] = [
    ["run --preset", "--batch", () => ["run", ...TINY]],
    ["run --preset", "--seq", () => ["run", ...TINY]],
    ["run --preset", "--seed", () => ["run", ...TINY]],
    ["run --preset", "--max-params", () => ["run", ...TINY]],
    ["run --checkpoint", "--layer", () => ["run", "--checkpoint", hf]],
    ["run --checkpoint", "--batch", () => ["run", "--checkpoint", hf]],
    ["run --checkpoint", "--seq", () => ["run", "--checkpoint", hf]],
    ["run --checkpoint", "--seed", () => ["run", "--checkpoint", hf]],
    ["convert", "--layer", () => ["convert", "--from", "hf", "--to", "maxtext", hf, scratch("never")]],
    ["convert", "--max-shard-bytes", () => ["convert", "--from", "hf", "--to", "maxtext", hf, scratch("never")]],
    ["init", "--seed", () => ["init", ...TINY, scratch("never")]],
  ];
  const cases = commands.flatMap(([command, flag, argv]) =>
    BAD_NUMBERS.map((v) => [`${command} ${flag}=${JSON.stringify(v)}`, flag, v, argv] as const),
  );
  it.each(cases)("%s is an error naming the flag", async (_, flag, value, argv) => {
    const r = await cli(...argv(), `${flag}=${value}`);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(new RegExp(`^moekit \\w+: ${flag} must be an integer (>= \\d+|in \\[\\d+, \\d+\\]), got `));
    expect(r.err.endsWith(`got ${JSON.stringify(value)}`)).toBe(true);
  });

  it("--max-params abc is an error, not a disabled guard", async () => {
    const r = await cli("run", "--preset", "deepseek3-671b", "--max-params", "abc");
    expect([r.code, r.err]).toEqual([2, 'moekit run: --max-params must be an integer >= 0, got "abc"']);
  });

  it("exponent notation stays accepted (--max-params 2e8, --batch 1e0)", async () => {
    expect((await cli("run", ...TINY, "--max-params", "2e8", "--batch", "1e0", "--json")).code).toBe(0);
  });

  it("--max-shard-bytes 0 is refused", async () => {
    const r = await cli("convert", "--from", "hf", "--to", "maxtext", hf, scratch("never"), "--max-shard-bytes", "0");
    expect(r.err).toMatch(/--max-shard-bytes must be an integer >= 1, got "0"/);
  });
});

describe("conflicting options and keys spelled twice", () => {
  const yaml = (text: string): string => {
    const f = scratch("cfg.yaml");
    fs.mkdirSync(path.dirname(f));
    fs.writeFileSync(f, text);
    return f;
  };

  it("--preset together with --config is an error (the config was silently dropped)", async () => {
    const r = await cli("run", ...TINY, "--config", yaml("num_experts: 4\n"));
    expect([r.code, r.err]).toEqual([2, "moekit run: give --preset NAME or --config FILE, not both"]);
  });

  it.each([
    ["run --config", (f: string) => ["run", "--config", f]],
    ["run --checkpoint --config", (f: string) => ["run", "--checkpoint", hf, "--config", f]],
  ])("%s with num_experts and numExperts names both", async (_, argv) => {
    const f = yaml("num_experts: 4\nnumExperts: 8\nnum_experts_per_tok: 2\n");
    const r = await cli(...argv(f));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--config .*cfg.yaml: num_experts and numExperts are the same key spelled twice; keep one/);
  });

  it("moeConfig with num_experts and numExperts names both", () => {
    expect(() => moeConfig({ num_experts: 4, numExperts: 8 })).toThrow(ConfigError);
    expect(() => moeConfig({ num_experts: 4, numExperts: 8 })).toThrow(
      "[config] numExperts=8: is given twice, also as num_experts=4; keep one",
    );
  });

  it("--set in the other spelling overrides the key instead of clashing", async () => {
    const r = await cli("run", ...TINY, "--set", "numExpertsPerTok=1", "--json");
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out) as { routedAssignments: number; input: number[] };
    expect(report.routedAssignments).toBe(report.input[0]! * report.input[1]!);
  });

  it("a config.json with num_experts and numExperts names both", () => {
    const config = JSON.parse(fs.readFileSync(path.join(hf, "config.json"), "utf8")) as Record<string, unknown>;
    expect(() => hfConfigToMaxText({ ...config, numExperts: 4 })).toThrow(/num_experts and numExperts are the same key spelled twice/);
  });

  it("a family forced over a config.json of another model_type says so in its errors", () => {
    const config = JSON.parse(fs.readFileSync(path.join(hf, "config.json"), "utf8")) as Record<string, unknown>;
    expect(() => hfConfigToMaxText(config, { family: "mixtral" })).toThrow(
      "mixtral (forced; config.json's model_type is qwen3_moe): config.json num_local_experts=undefined: is required",
    );
  });
});

describe("config.json sizes are range-checked before any allocation", () => {
  const config = (): Record<string, unknown> =>
    JSON.parse(fs.readFileSync(path.join(hf, "config.json"), "utf8")) as Record<string, unknown>;
  const cases: [string, unknown][] = [
    ["num_hidden_layers", 1e7],
    ["num_hidden_layers", -2],
    ["num_hidden_layers", 2.5],
    ["num_hidden_layers", "48"],
    ["hidden_size", -4],
    ["hidden_size", 2 ** 40],
    ["num_experts", 1e9],
    ["moe_intermediate_size", 0.5],
    ["num_experts_per_tok", -1],
  ];
  it.each(cases)("%s = %j is refused, naming the key", (key, value) => {
    expect(() => hfConfigToMaxText({ ...config(), [key]: value })).toThrow(
      new RegExp(`config.json ${key}=.*: must be an integer in \\[0, \\d+\\]`),
    );
  });

  it("mlp_only_layers with a negative entry is refused", () => {
    expect(() => hfConfigToMaxText({ ...config(), mlp_only_layers: [-1] })).toThrow(
      /mlp_only_layers=\[-1\]: must be a list of integers in/,
    );
  });

  it("moekit run on a config.json with num_hidden_layers 1e12 exits 2 (it used to end in a V8 fatal error)", () => {
    const dir = scratch("huge");
    fs.cpSync(hf, dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...config(), num_hidden_layers: 1e12 }));
    const r = runChild("cli.ts", ["run", "--checkpoint", dir], 60_000);
    expect(r.timedOut).toBe(false);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/config.json num_hidden_layers=1000000000000: must be an integer in \[0, 100000\]/);
  });
});
