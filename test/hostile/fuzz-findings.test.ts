// Hostile inputs, item "fuzzing": what the fuzzers of fuzz.test.ts found, each as its smallest reproducer through
// the CLI (exit code 2 and the one error line) or the API (the typed error and its message).
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { hfConfigToMaxText } from "../../src/checkpoint/index.js";
import { ConfigError, MoeError } from "../../src/core/errors.js";
import { CheckpointError, readNpy } from "../../src/io/index.js";
import { moeConfig } from "../../src/moe/config.js";
import { runChild, useCli, useScratch } from "./cli-harness.js";

const cli = useCli();
const scratch = useScratch("findings");

function fileWith(name: string, content: string | Uint8Array): string {
  const p = scratch(name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
  return p;
}

/** Exit code 2 and exactly one error line, matching `message`. */
function expectOneLine(r: { code: number | null; err: string }, message: RegExp): void {
  const lines = r.err.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("[moekit]"));
  expect(r.code).toBe(2);
  expect(lines).toEqual([expect.stringMatching(message)]);
}

describe("--config files (YAML): every problem the parser reports is one line, exit 2", () => {
  const cases: [string, string, RegExp][] = [
    // these threw the yaml library's ReferenceError (a stack trace, exit 1) or printed a multi-line warning
    [
      "an alias bomb",
      `a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n`,
      /not valid YAML or JSON \(Excessive alias count/,
    ],
    ["an alias of no anchor", "a: *x\n", /not valid YAML or JSON \(Unresolved alias/],
    ["an unknown tag", "num_experts: !foo 4\n", /not valid YAML or JSON \(Unresolved tag: !foo at line 1, column 14\)$/],
    [
      "a collection as a key",
      "? [a, b]\n: 1\n",
      /^moekit run: \[config\] \[ a, b \]=1: is not a MoE config key \(a whole MaxText model YAML: .* --skip-other-keys\)$/,
    ],
    ["a top-level !!set (an object, not a mapping)", "!!set {a, b}\n", /: expected a mapping of MaxText keys$/],
    // the message held the key's newline: two lines
    [
      "a key holding a newline",
      '"num\\nexperts": 4\n',
      /^moekit run: \[config\] num\\u000aexperts=4: is not a MoE config key \(did you mean num_experts\?\)$/,
    ],
    // Object.prototype's names were taken for MoE keys ("must be a function"); __proto__ was accepted silently
    [
      "the key constructor",
      "constructor: 1\n",
      /^moekit run: \[config\] constructor=1: is not a MoE config key \(a whole MaxText model YAML: .*\)$/,
    ],
    [
      "the key __proto__",
      "__proto__: {num_experts: 4}\n",
      /^moekit run: \[config\] __proto__=\{"num_experts":4\}: is not a MoE config key \(a whole MaxText model YAML: .*\)$/,
    ],
  ];
  it.each(cases)("%s", async (_, text, message) => {
    expectOneLine(await cli("run", "--config", fileWith("bad.yaml", text)), message);
  });

  it("an unknown key of 100,000 characters is refused at once (the did-you-mean edit distance is skipped)", () => {
    const t0 = performance.now();
    expect(() => moeConfig({ ["k".repeat(100_000)]: 1 })).toThrow(ConfigError);
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});

describe("Hugging Face config.json", () => {
  let hf: string;
  beforeAll(async () => {
    hf = scratch("llama4");
    expect((await cli("init", "--preset", "tiny-llama4-17b-16e", "--format", "hf", "--family", "llama4", hf)).code).toBe(0);
  });
  const config = (): Record<string, unknown> =>
    JSON.parse(fs.readFileSync(path.join(hf, "config.json"), "utf8")) as Record<string, unknown>;

  it("interleave_moe_layer_step 0 is refused (it ended the process in a V8 fatal error: an endless layer list)", () => {
    const dir = scratch("step0");
    fs.cpSync(hf, dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...config(), interleave_moe_layer_step: 0 }));
    const r = runChild("cli.ts", ["run", "--checkpoint", dir], 60_000);
    expect(r.timedOut).toBe(false);
    expectOneLine({ code: r.status, err: r.stderr }, /^moekit run: \[model\] Llama4ForCausalLM: interleave_moe_layer_step must be >= 1$/);
  });

  it('architectures ["constructor"] is not a supported architecture (it was looked up on Object.prototype)', () => {
    expect(() => hfConfigToMaxText({ ...config(), architectures: ["constructor"], model_type: undefined })).toThrow(
      /^\[model\] constructor: not a supported MoE architecture \(supported: /,
    );
  });

  it("a config.json that is not JSON is one line (JSON.parse's message quotes the text, newlines included)", async () => {
    const dir = scratch("notjson");
    fs.cpSync(hf, dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "config.json"), 'y\n  "architectures": [\n');
    expectOneLine(
      await cli("run", "--checkpoint", dir),
      /config.json: is not valid JSON \(Unexpected token 'y', "y\\u000a {2}"archi"\.\.\. is not valid JSON\)$/,
    );
  });
});

describe("checkpoint files", () => {
  it("an .npy header nested 100,000 deep is a CheckpointError (it overflowed the stack: RangeError)", () => {
    const header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${"(".repeat(100_000)}${")".repeat(100_000)}, }\n`;
    const pre = Buffer.alloc(12);
    Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0]).copy(pre);
    pre.writeUInt32LE(header.length, 8);
    const file = fileWith("deep.npy", Buffer.concat([pre, Buffer.from(header, "latin1")]));
    expect(() => readNpy(file)).toThrow(CheckpointError);
    expect(() => readNpy(file)).toThrow(
      /deep.npy: header "\{'descr': '<f4', 'fortran_order': False, 'shape': \(+" is malformed: nested deeper than 32 levels at character 82$/,
    );
  });

  it("a safetensors tensor name holding a newline keeps the error on one line", async () => {
    const json = JSON.stringify({ "a\nb": { dtype: "F32", shape: [2], data_offsets: [0, 4] } });
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    const file = fileWith("name.safetensors", Buffer.concat([len, Buffer.from(json), Buffer.alloc(4)]));
    expectOneLine(
      await cli("run", "--checkpoint", file),
      /name.safetensors: tensor 'a\\u000ab': shape \[2\] of F32 needs 8 bytes but data_offsets \[0, 4\] hold 4$/,
    );
  });

  it("every MoeError message is one line, however its values were spelled", () => {
    expect(new MoeError("a\nb\r\u2028c").message).toBe("a\\u000ab\\u000d\\u2028c");
    expect(new MoeError("x".repeat(10_000)).message).toMatch(/^x{2000}\.\.\. \(8000 more characters\)$/);
  });
});
