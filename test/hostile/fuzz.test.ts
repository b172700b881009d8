// Hostile inputs, item "fuzzing": the readers of files a user hands moekit (safetensors, .npy, a --config YAML or
// JSON file, a Hugging Face config.json) each take thousands of inputs from fast-check with a fixed seed: random
// bytes, byte-level mutations of a valid file, and valid files whose header or config fields are replaced by
// hostile values, so that inputs get past the first checks. Property: the reader returns or throws a MoeError
// with a one-line message, within a time bound, reading no more than the file holds; the process's peak memory
// stays bounded over all of them. Each file also has to reach many distinct checks (no fuzzer stuck at the magic).
import fs from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { stringify as yamlStringify, parse as yamlParse } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { openMoeLayer } from "../../src/checkpoint/index.js";
import { readKeysFile } from "../../src/cli/config-file.js";
import { Tensor, tensor } from "../../src/core/tensor.js";
import { SafetensorsFile, STORAGE_DTYPES, readNpy, saveSafetensors, writeNpy } from "../../src/io/index.js";
import { MOE_DEFAULTS, moeConfig } from "../../src/moe/config.js";
import { EDGE_NUMBERS, PROTOTYPE_KEYS, hostileJson, mutatedBytes, outcomeOf, type Outcome } from "./fuzz-inputs.js";
import { useCli, useScratch } from "./cli-harness.js";

const SEED = 20261204;
/** Inputs per reader; their sum is the fuzz-case count of the suite. */
const RUNS = { safetensors: 3000, npy: 3000, config: 2500, hfConfig: 1500 };

const cli = useCli();
const scratch = useScratch("fuzz");
const root = path.join(import.meta.dirname, "..", "..");

/** Runs `read` on every input, records which check refused each. */
function fuzz<T>(inputs: fc.Arbitrary<T>, numRuns: number, read: (input: T) => Outcome): Outcome[] {
  const outcomes: Outcome[] = [];
  fc.assert(
    fc.property(inputs, (input) => {
      outcomes.push(read(input));
    }),
    { seed: SEED, numRuns, endOnFailure: true },
  );
  expect(outcomes.length).toBeGreaterThanOrEqual(numRuns);
  return outcomes;
}

/** The inputs got past the first checks: `min` distinct refusals or more, each of `deep` among them, and some accepted. */
function expectReached(outcomes: Outcome[], min: number, deep: RegExp[]): void {
  const checks = [...new Set(outcomes.flatMap((o) => (o.check === undefined ? [] : [o.check])))];
  expect(checks.length).toBeGreaterThanOrEqual(min);
  expect(outcomes.filter((o) => o.ok).length).toBeGreaterThan(0);
  for (const d of deep) expect(checks.filter((c) => d.test(c)).length, `a refusal matching ${String(d)}`).toBeGreaterThan(0);
}

/** `o` with each edit's key set to its value (an own key, "__proto__" included), or removed when the value is undefined. */
function withEdits(o: Record<string, unknown>, edits: readonly { key: string; value: unknown }[]): Record<string, unknown> {
  const out = structuredClone(o);
  for (const { key, value } of edits) {
    if (value === undefined) delete out[key];
    else Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function fileAt(name: string): string {
  const p = scratch(name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  return p;
}

describe("the safetensors reader", () => {
  const file = fileAt("fuzz.safetensors");
  let valid: Uint8Array;
  let header: Record<string, unknown>;
  let data: Uint8Array;
  beforeAll(() => {
    const tensors: Record<string, Tensor> = {
      a: tensor([1, 2, 3, 4, 5, 6], [2, 3]),
      b: tensor([1, -2, 3, 4], [4], "bfloat16"),
      c: tensor([1, -2, 3, 40000], [2, 2], "int32"),
      d: tensor([0, 1, 1], [3], "int32"),
      e: tensor([0.5, 2], [2], "float64"),
    };
    saveSafetensors(file, tensors, { metadata: { format: "pt" }, dtypes: { c: "I64", d: "BOOL", e: "F16" } });
    valid = new Uint8Array(fs.readFileSync(file));
    const n = Number(Buffer.from(valid).readBigUInt64LE(0));
    header = JSON.parse(Buffer.from(valid.subarray(8, 8 + n)).toString()) as Record<string, unknown>;
    data = valid.subarray(8 + n);
  });

  /** A file from a header object, the data buffer and, sometimes, a wrong length field. */
  const withHeader = (h: Record<string, unknown>, buffer: Uint8Array, length?: bigint): Uint8Array => {
    const json = Buffer.from(JSON.stringify(h));
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(length ?? BigInt(json.length));
    return Buffer.concat([prefix, json, buffer]);
  };

  const fieldEdit = fc.record({
    entry: fc.oneof(
      fc.constantFrom("a", "b", "c", "d", "e", "__metadata__"),
      fc.constantFrom(...PROTOTYPE_KEYS),
      fc.string({ maxLength: 6 }),
    ),
    field: fc.constantFrom("dtype", "shape", "data_offsets", "(entry)", "(delete)"),
    value: fc.oneof(hostileJson, fc.constantFrom<unknown>(...STORAGE_DTYPES, "F8_E4M3", "bf16", "C64")),
  });
  const structured = fc
    .record({
      edits: fc.array(fieldEdit, { minLength: 1, maxLength: 3 }),
      length: fc.oneof(
        { weight: 6, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) },
        { weight: 1, arbitrary: fc.constantFrom(0n, 1n, 2n ** 63n, 100_000_001n) },
      ),
      buffer: fc.constantFrom("keep", "cut", "extend"),
    })
    .map(({ edits, length, buffer }) => {
      const h = structuredClone(header);
      for (const { entry, field, value } of edits) {
        if (field === "(delete)") delete h[entry];
        else if (field === "(entry)") h[entry] = value;
        else {
          const target = Object.hasOwn(h, entry) ? h[entry] : undefined;
          if (typeof target === "object" && target !== null) (target as Record<string, unknown>)[field] = value;
          else h[entry] = { dtype: "F32", shape: [1], data_offsets: [0, 4], [field]: value };
        }
      }
      const d = buffer === "keep" ? data : buffer === "cut" ? data.subarray(0, data.length >> 1) : Buffer.concat([data, new Uint8Array(8)]);
      return withHeader(h, d, length);
    });

  /** The valid header over a data buffer with bytes overwritten: values out of range for their dtype (I64, BOOL). */
  const dataEdits = fc
    .array(fc.record({ at: fc.nat(), byte: fc.constantFrom(0x01, 0x02, 0x7f, 0x80, 0xff) }), { minLength: 1, maxLength: 3 })
    .map((edits) => {
      const out = Uint8Array.from(valid);
      for (const { at, byte } of edits) out[valid.length - data.length + (at % data.length)] = byte;
      return out;
    });

  let outcomes: Outcome[] = [];
  it(`takes ${RUNS.safetensors} hostile files: typed one-line errors, bounded time and reads`, () => {
    const inputs = fc.oneof(
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }) },
      { weight: 3, arbitrary: fc.constant(null).chain(() => mutatedBytes(valid)) },
      { weight: 1, arbitrary: fc.constant(null).chain(() => dataEdits) },
      { weight: 4, arbitrary: structured },
    );
    outcomes = fuzz(inputs, RUNS.safetensors, (bytes) => {
      fs.writeFileSync(file, bytes);
      return outcomeOf(() => {
        const f = SafetensorsFile.open(file);
        try {
          for (const name of f.keys()) f.get(name);
          if (f.bytesRead > bytes.length) throw new Error(`read ${f.bytesRead} bytes of a ${bytes.length}-byte file`);
        } finally {
          f.close();
        }
      }, file);
    });
  });

  it("the inputs reached the header's deep checks, and some stayed valid", () => {
    expectReached(outcomes, 15, [
      /overlap/,
      /belong to no tensor/,
      /needs N bytes but/,
      /unknown dtype/,
      /does not fit intN/,
      /not a list of non-negative/,
    ]);
  });
});

describe("the .npy reader", () => {
  const file = fileAt("fuzz.npy");
  let valid: Uint8Array;
  beforeAll(() => {
    writeNpy(file, tensor([1, 2, 3, 4, 5, 6], [2, 3]), { overwrite: true });
    valid = new Uint8Array(fs.readFileSync(file));
  });

  const pyInt = fc.oneof(
    fc.integer({ min: 0, max: 6 }),
    fc.constantFrom(...EDGE_NUMBERS.filter(Number.isInteger)),
    fc.constantFrom(-1, 10 ** 30, 2 ** 64),
  );
  const shapeText = fc.oneof(
    {
      weight: 4,
      arbitrary: fc
        .array(
          pyInt.map((n) => BigInt(n).toString()),
          { maxLength: 4 },
        )
        .map((s) => (s.length === 1 ? `(${s[0]},)` : `(${s.join(", ")})`)),
    },
    { weight: 1, arbitrary: fc.constantFrom("[2, 3]", "((2,),)", "(2.5,)", "('2',)", "None", "(True,)", "(2, 3", "(" + "(".repeat(40)) },
  );
  const descrText = fc.constantFrom(
    "'<f4'",
    "'<f8'",
    "'<f2'",
    "'|b1'",
    "'|u1'",
    "'<i8'",
    "'<u8'",
    "'>f4'",
    "'<c8'",
    "'<U3'",
    "'O'",
    "[('a', '<f4')]",
    "'<f4",
    "1",
  );
  const orderText = fc.constantFrom("False", "True", "0", "None", "'x'");
  const structured = fc
    .record({
      descr: descrText,
      order: orderText,
      shape: shapeText,
      keys: fc.constantFrom("all", "no-shape", "extra", "twice"),
      version: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(1, 2, 3) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
      badLength: fc.oneof(
        { weight: 6, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 ** 32 - 1 }) },
      ),
      data: fc.oneof(fc.constant("exact" as const), fc.uint8Array({ maxLength: 64 })),
    })
    .map(({ descr, order, shape, keys, version, badLength, data }) => {
      const shapeField = keys === "no-shape" ? "" : `'shape': ${shape}, `;
      const extra = keys === "extra" ? "'x': 1, " : keys === "twice" ? `'descr': ${descr}, ` : "";
      const text = Buffer.from(`{'descr': ${descr}, 'fortran_order': ${order}, ${shapeField}${extra}}\n`, "latin1");
      const pre = Buffer.alloc(version === 1 ? 10 : 12);
      Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]).copy(pre);
      if (version === 1) pre.writeUInt16LE((badLength ?? text.length) & 0xffff, 8);
      else pre.writeUInt32LE(badLength ?? text.length, 8);
      let body: Uint8Array = data === "exact" ? new Uint8Array(0) : data;
      if (data === "exact") {
        const dims =
          /^\(([\d, ]*)\)$/
            .exec(shape)?.[1]
            ?.split(",")
            .filter((s) => s.trim() !== "") ?? [];
        const n = dims.reduce((a, d) => a * Number(d), Number(/\d+/.exec(descr)?.[0] ?? 1));
        body = new Uint8Array(Number.isSafeInteger(n) && n <= 4096 ? n : 0);
      }
      return Buffer.concat([pre, text, body]);
    });

  let outcomes: Outcome[] = [];
  it(`takes ${RUNS.npy} hostile files: typed one-line errors, bounded time`, () => {
    const inputs = fc.oneof(
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }) },
      { weight: 3, arbitrary: fc.constant(null).chain(() => mutatedBytes(valid)) },
      { weight: 4, arbitrary: structured },
    );
    outcomes = fuzz(inputs, RUNS.npy, (bytes) => {
      fs.writeFileSync(file, bytes);
      return outcomeOf(() => readNpy(file), file);
    });
  });

  it("the inputs reached the header's and the data's checks, and some stayed valid", () => {
    expectReached(outcomes, 12, [/truncated/, /unexpected bytes/, /malformed/, /not supported/, /fortran_order/, /shape/]);
  });
});

/** Text edits that YAML gives meaning to: anchors, aliases, tags, merges, documents, flow and block openers. */
const YAML_TOKENS = [
  "&a ",
  "*a",
  "!!set ",
  "!!binary ",
  "!foo ",
  "<<: ",
  "---\n",
  "...\n",
  "[",
  "{",
  "? ",
  "|\n",
  "\t",
  "%YAML 1.1\n",
  "\u0000",
  "\ufeff",
  ": ",
  "- ",
  "#",
  "'",
  '"',
];

function insertAt(text: string, at: number, piece: string): string {
  const i = Math.floor(at * text.length);
  return text.slice(0, i) + piece + text.slice(i);
}

describe("the --config reader (YAML or JSON) and the MoE config it gives", () => {
  const file = fileAt("fuzz.yaml");
  const exampleText = fs.readFileSync(path.join(root, "examples", "my-moe.yaml"), "utf8");
  const example = yamlParse(exampleText) as Record<string, unknown>;
  const knownKeys = Object.keys(MOE_DEFAULTS);

  const keyEdit = fc.record({
    key: fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(...Object.keys(example), ...knownKeys) },
      { weight: 1, arbitrary: fc.constantFrom(...PROTOTYPE_KEYS, "numExperts", "embDim", "a\nb", "k".repeat(100_000)) },
      { weight: 1, arbitrary: fc.string({ maxLength: 10 }) },
    ),
    value: fc.oneof({ weight: 8, arbitrary: hostileJson }, { weight: 1, arbitrary: fc.constant(undefined) }),
  });
  const structured = fc.record({ edits: fc.array(keyEdit, { minLength: 1, maxLength: 3 }), json: fc.boolean() }).map(({ edits, json }) => {
    const o = withEdits(example, edits);
    return json ? JSON.stringify(o) : yamlStringify(o);
  });
  const tokens = fc
    .array(fc.record({ at: position(), piece: fc.constantFrom(...YAML_TOKENS) }), { minLength: 1, maxLength: 4 })
    .map((edits) => edits.reduce((t, { at, piece }) => insertAt(t, at, piece), exampleText));

  let outcomes: Outcome[] = [];
  it(`takes ${RUNS.config} hostile config files: typed one-line errors, bounded time`, () => {
    const inputs = fc.oneof(
      { weight: 1, arbitrary: fc.string({ maxLength: 120 }) },
      {
        weight: 2,
        arbitrary: fc
          .constant(null)
          .chain(() => mutatedBytes(Buffer.from(exampleText)))
          .map((b) => Buffer.from(b).toString("latin1")),
      },
      { weight: 3, arbitrary: tokens },
      { weight: 4, arbitrary: structured },
    );
    outcomes = fuzz(inputs, RUNS.config, (text) => {
      fs.writeFileSync(file, text);
      return outcomeOf(() => moeConfig(readKeysFile(file)), file);
    });
  });

  it("the inputs reached the YAML parser's and the config's checks, and some stayed valid", () => {
    expectReached(outcomes, 20, [/not valid YAML/, /\[config\]/, /expected a mapping/, /spelled twice/]);
  });
});

/** config.json fields read by some family (src/checkpoint/hf-config.ts), and the families' twin spellings. */
const HF_KEYS = [
  "architectures",
  "model_type",
  "hidden_size",
  "num_hidden_layers",
  "num_experts",
  "num_local_experts",
  "n_routed_experts",
  "num_experts_per_tok",
  "experts_per_token",
  "moe_intermediate_size",
  "intermediate_size",
  "intermediate_size_mlp",
  "shared_expert_intermediate_size",
  "shared_intermediate_size",
  "decoder_sparse_step",
  "mlp_only_layers",
  "norm_topk_prob",
  "hidden_act",
  "n_shared_experts",
  "routed_scaling_factor",
  "scoring_func",
  "topk_method",
  "n_group",
  "topk_group",
  "first_k_dense_replace",
  "moe_layer_freq",
  "interleave_moe_layer_step",
  "moe_layers",
  "swiglu_limit",
  "quantization_config",
  "text_config",
  "numExperts",
];

describe("the Hugging Face config.json reader (through reading the layer)", () => {
  const families = ["qwen3_moe", "deepseek_v3", "llama4", "gpt_oss"] as const;
  const dirs: Record<string, string> = {};
  const configs: Record<string, Record<string, unknown>> = {};
  beforeAll(async () => {
    for (const family of families) {
      const preset =
        family === "deepseek_v3"
          ? "tiny-deepseek3-671b"
          : family === "llama4"
            ? "tiny-llama4-17b-16e"
            : family === "gpt_oss"
              ? "tiny-gpt-oss-20b"
              : "tiny-qwen3-30b-a3b";
      dirs[family] = scratch(family);
      const r = await cli("init", "--preset", preset, "--format", "hf", "--family", family, dirs[family]);
      expect(r.code, r.err).toBe(0);
      configs[family] = JSON.parse(fs.readFileSync(path.join(dirs[family], "config.json"), "utf8")) as Record<string, unknown>;
    }
  });

  /** Edits of a family's config: mostly its own keys, set to small numbers (0 steps, -1 counts) or hostile values. */
  const keyEdits = (family: string): fc.Arbitrary<{ key: string; value: unknown }[]> =>
    fc.array(
      fc.record({
        key: fc.oneof(
          { weight: 4, arbitrary: fc.constantFrom(...Object.keys(configs[family]!)) },
          { weight: 2, arbitrary: fc.constantFrom(...HF_KEYS) },
          { weight: 1, arbitrary: fc.constantFrom(...PROTOTYPE_KEYS) },
        ),
        value: fc.oneof(
          { weight: 3, arbitrary: fc.constantFrom<unknown>(0, 1, 2, -1) },
          { weight: 4, arbitrary: hostileJson },
          {
            weight: 1,
            arbitrary: fc.constantFrom<unknown>(["MixtralForCausalLM"], ["constructor"], ["PhimoeForCausalLM"], "gelu", "sigmoid"),
          },
          { weight: 1, arbitrary: fc.constantFrom<unknown>(undefined, { quant_method: "fp8" }) },
        ),
      }),
      { minLength: 1, maxLength: 3 },
    );
  const structured = fc
    .constantFrom(...families)
    .chain((family) => keyEdits(family).map((edits) => ({ family, edits })))
    .map(({ family, edits }) => ({ family, text: Buffer.from(JSON.stringify(withEdits(configs[family]!, edits))) as Uint8Array }));
  const bytes = fc
    .constantFrom(...families)
    .chain((family) => mutatedBytes(Buffer.from(JSON.stringify(configs[family], null, 2))).map((text) => ({ family, text })));

  let outcomes: Outcome[] = [];
  it(`takes ${RUNS.hfConfig} hostile config.json files: typed one-line errors, bounded time`, () => {
    outcomes = fuzz(fc.oneof({ weight: 1, arbitrary: bytes }, { weight: 3, arbitrary: structured }), RUNS.hfConfig, ({ family, text }) => {
      const file = path.join(dirs[family]!, "config.json");
      fs.writeFileSync(file, text);
      return outcomeOf(() => openMoeLayer(dirs[family]!, undefined, { format: "hf" }), dirs[family]!);
    });
  });

  it("the inputs reached the field checks and the tensor layout checks, and some stayed valid", () => {
    expectReached(outcomes, 20, [/config\.json \w+=/, /not valid JSON/, /\[checkpoint\]/, /\[model\]/]);
  });
});

function position(): fc.Arbitrary<number> {
  return fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
}

describe("memory", () => {
  it("every input above ran in this process, and its peak memory stayed under 1.5 GiB (no hostile size was allocated)", () => {
    expect(process.resourceUsage().maxRSS).toBeLessThan(1.5 * 2 ** 20);
  });
});
