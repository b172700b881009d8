// Hostile inputs, item "messages, not stack traces": each bad file or path is a one-line error naming it,
// exit code 2, and nothing hangs (FIFOs are run in a child process bounded in time).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { SafetensorsCheckpoint, SafetensorsFile } from "../../src/io/index.js";
import { runChild, useCli, useScratch, type CliResult } from "./cli-harness.js";

const cli = useCli();
const scratch = useScratch("cli-errors");

/** Exit code 2 and one error line (besides `[moekit]` progress lines), with no stack trace. */
function expectOneLine(r: { code: number | null; err: string }, message: RegExp): void {
  const lines = r.err.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("[moekit]"));
  expect(r.code).toBe(2);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(message);
  expect(r.err).not.toMatch(/^\s+at /m);
}

function fileIn(name: string, content?: string): string {
  const p = scratch(name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  if (content !== undefined) fs.writeFileSync(p, content);
  return p;
}

/** A safetensors file whose header nests `depth` arrays. */
function deepHeader(depth: number): Buffer {
  const json = `{"a":${"[".repeat(depth)}${"]".repeat(depth)}}`;
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, Buffer.from(json)]);
}

let hf: string;
let sharded: string;
beforeAll(async () => {
  hf = scratch("hf");
  expect((await cli("init", "--preset", "tiny-qwen3-30b-a3b", "--format", "hf", "--family", "qwen3_moe", hf)).code).toBe(0);
  sharded = scratch("sharded");
  expect((await cli("convert", "--from", "hf", "--to", "hf", hf, sharded, "--max-shard-bytes", "20000", "--quiet")).code).toBe(0);
});

/** A copy of the sharded checkpoint, changed by `edit`. */
function shardedCopy(edit: (dir: string, shards: string[]) => void): string {
  const dir = scratch("copy");
  fs.cpSync(sharded, dir, { recursive: true });
  edit(
    dir,
    fs
      .readdirSync(dir)
      .filter((f) => /-of-\d+\.safetensors$/.test(f))
      .sort(),
  );
  return dir;
}

describe("init's arguments that were ignored are refused before the layer is made", () => {
  it.each([
    ["two output paths", ["a", "b"], /^moekit init: init writes one OUT, got 2 paths: .*a .*b$/],
    ["--family without --format hf", ["--family", "mixtral", "x.safetensors"], /^moekit init: --family mixtral goes with --format hf/],
    [
      "--format hf onto a .safetensors name",
      ["--format", "hf", "--family", "mixtral", "hf.safetensors"],
      /^moekit init: --format hf writes a folder \(config.json and safetensors\), not the file .*hf.safetensors/,
    ],
  ])("%s", async (_, args, message) => {
    const dir = path.dirname(scratch("x"));
    fs.mkdirSync(dir, { recursive: true });
    const r = await cli(
      "init",
      "--preset",
      "tiny-mixtral-8x7b",
      ...args.map((a) => (a.startsWith("-") || a === "mixtral" || a === "hf" ? a : path.join(dir, a))),
    );
    expectOneLine(r, message);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe("bad config files", () => {
  const cases: [string, string, (f: string) => string[], RegExp][] = [
    [
      "a YAML syntax error (run --config)",
      "num_experts: [8\nnum_experts_per_tok: 2\n",
      (f) => ["run", "--config", f],
      /^moekit run: --config .*bad.yaml: not valid YAML or JSON \(.* at line 2, column 1\)$/,
    ],
    [
      "a YAML syntax error (convert --config)",
      "a: b: c\n",
      (f) => ["convert", "--from", "maxtext", "--to", "hf", f, scratch("never"), "--config", f],
      /^moekit convert: --config .*bad.yaml: not valid YAML or JSON/,
    ],
    ["a config that is a list", "- 1\n- 2\n", (f) => ["run", "--config", f], /--config .*bad.yaml: expected a mapping of MaxText keys/],
  ];
  it.each(cases)("%s", async (_, content, argv, message) => {
    expectOneLine(await cli(...argv(fileIn("bad.yaml", content))), message);
  });

  it("a missing --config file (the README's `run --config my-moe.yaml` without the file)", async () => {
    expectOneLine(
      await cli("run", "--config", "/nonexistent/my-moe.yaml"),
      /^moekit run: --config \/nonexistent\/my-moe.yaml: cannot open \(ENOENT/,
    );
  });

  it("a --config that is a folder", async () => {
    const dir = fileIn("conf");
    fs.mkdirSync(dir);
    expectOneLine(await cli("run", "--config", dir), /--config .*conf: is a folder, not a file/);
  });

  it("a config.json nested 200,000 deep", async () => {
    const dir = shardedCopy((d) => fs.writeFileSync(path.join(d, "config.json"), `{"a":${"[".repeat(200_000)}${"]".repeat(200_000)}}`));
    expectOneLine(await cli("run", "--checkpoint", dir), /config.json: JSON nested deeper than 64 levels/);
  });
});

describe("bad output paths", () => {
  it("--output into a missing folder names the folder", async () => {
    const r = await cli("run", "--checkpoint", hf, "--output", "/nonexistent-folder/out.npy");
    expectOneLine(r, /\/nonexistent-folder\/out.npy: the folder \/nonexistent-folder does not exist/);
  });

  it("an OUT whose folder is a file names it, even with --force", async () => {
    const file = fileIn("plain", "x");
    expectOneLine(
      await cli("init", "--preset", "tiny-qwen3-30b-a3b", "--force", path.join(file, "out")),
      /^moekit init: OUT .*plain\/out: .*plain is not a folder$/,
    );
  });

  it("--output onto a folder", async () => {
    const dir = fileIn("taken.npy");
    fs.mkdirSync(dir);
    expectOneLine(await cli("run", "--checkpoint", hf, "--output", dir, "--force"), /taken.npy: is a folder, not a file/);
  });
});

describe("bad checkpoint files", () => {
  it("a shard path that is a directory", async () => {
    const dir = shardedCopy((d, shards) => {
      fs.rmSync(path.join(d, shards[1]!));
      fs.mkdirSync(path.join(d, shards[1]!));
    });
    expectOneLine(await cli("run", "--checkpoint", dir), /-00002-of-\d+\.safetensors: is a folder, not a file/);
  });

  it("a safetensors header nested 200,000 deep (library and CLI)", async () => {
    const file = fileIn("deep.safetensors");
    fs.writeFileSync(file, deepHeader(200_000));
    expect(() => SafetensorsFile.open(file)).toThrow(/deep.safetensors: header JSON nested deeper than 64 levels/);
    expectOneLine(await cli("run", "--checkpoint", file), /deep.safetensors: header JSON nested deeper than 64 levels/);
  });

  it("an index json nested 200,000 deep", () => {
    const dir = shardedCopy((d) =>
      fs.writeFileSync(path.join(d, "model.safetensors.index.json"), `{"weight_map":${"[".repeat(200_000)}${"]".repeat(200_000)}}`),
    );
    expect(() => SafetensorsCheckpoint.open(dir)).toThrow(/index.json: JSON nested deeper than 64 levels/);
  });

  it("a symlinked shard pointing outside the checkpoint directory is refused (index and plain folder)", async () => {
    const outside = fileIn("elsewhere.safetensors");
    const dir = shardedCopy((d, shards) => {
      fs.renameSync(path.join(d, shards[0]!), outside);
      fs.symlinkSync(outside, path.join(d, shards[0]!));
    });
    expectOneLine(
      await cli("run", "--checkpoint", dir),
      /shard '.*-00001-of-\d+\.safetensors' resolves to .*elsewhere.safetensors, which lies outside the checkpoint directory/,
    );
    fs.rmSync(path.join(dir, "model.safetensors.index.json"));
    expect(() => SafetensorsCheckpoint.open(dir)).toThrow(
      /resolves to .*elsewhere.safetensors, which lies outside the checkpoint directory/,
    );
  });

  it("symlinks into a Hugging Face hub cache's blobs folder are read (snapshots/<rev> -> ../../blobs)", async () => {
    const repo = fileIn("models--org--tiny");
    const snapshot = path.join(repo, "snapshots", "0123abc");
    fs.mkdirSync(path.join(repo, "blobs"), { recursive: true });
    fs.mkdirSync(snapshot, { recursive: true });
    for (const f of fs.readdirSync(sharded)) {
      fs.copyFileSync(path.join(sharded, f), path.join(repo, "blobs", `blob-${f}`));
      fs.symlinkSync(path.join("..", "..", "blobs", `blob-${f}`), path.join(snapshot, f));
    }
    const r: CliResult = await cli("run", "--checkpoint", snapshot, "--json");
    expect(r.code).toBe(0);
  });
});

describe("FIFOs never block (each in a child process killed after 20 s)", () => {
  const fifo = (name: string): string => {
    const p = fileIn(name);
    execFileSync("mkfifo", [p]);
    return p;
  };
  const cases: [string, () => string[], RegExp][] = [
    [
      "a checkpoint file that is a FIFO",
      () => ["run", "--checkpoint", fifo("pipe.safetensors")],
      /pipe.safetensors: is not a regular file \(a FIFO, socket or device\)/,
    ],
    [
      "a shard that is a FIFO",
      () => [
        "run",
        "--checkpoint",
        shardedCopy((d, shards) => {
          fs.rmSync(path.join(d, shards[0]!));
          execFileSync("mkfifo", [path.join(d, shards[0]!)]);
        }),
      ],
      /-00001-of-\d+\.safetensors: is not a regular file/,
    ],
    ["a --config that is a FIFO", () => ["run", "--config", fifo("pipe.yaml")], /--config .*pipe.yaml: is not a regular file/],
    ["an --input that is a FIFO", () => ["run", "--checkpoint", hf, "--input", fifo("pipe.npy")], /pipe.npy: is not a regular file/],
  ];
  it.each(cases)("%s", (_, argv, message) => {
    const r = runChild("cli.ts", argv(), 20_000);
    expect(r.timedOut).toBe(false);
    expectOneLine({ code: r.status, err: r.stderr }, message);
  });
});
