import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { toBf16 } from "../../src/core/dtype.js";
import { Tensor, tensor, zeros } from "../../src/core/tensor.js";
import {
  CheckpointError,
  SafetensorsCheckpoint,
  SafetensorsFile,
  loadSafetensors,
  saveSafetensors,
  saveShardedSafetensors,
  type StorageDType,
} from "../../src/io/index.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "moekit-safetensors-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

let counter = 0;
function tmp(name = "t.safetensors"): string {
  return path.join(root, `${counter++}-${name}`);
}

function tmpDir(): string {
  const dir = tmp("dir");
  fs.mkdirSync(dir);
  return dir;
}

/** A file built byte by byte from the spec: u64 LE header length, header text, data. */
function handBuilt(header: string, data: ArrayLike<number> = [], headerLength?: bigint): string {
  const json = Buffer.from(header, "utf8");
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(headerLength ?? BigInt(json.length));
  const file = tmp();
  fs.writeFileSync(file, Buffer.concat([prefix, json, Buffer.from(Uint8Array.from(data))]));
  return file;
}

function entry(dtype: string, shape: number[], begin: number, end: number): unknown {
  return { dtype, shape, data_offsets: [begin, end] };
}

function bytesOf(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

function errorOf(action: () => unknown): CheckpointError {
  try {
    action();
  } catch (e) {
    expect(e).toBeInstanceOf(CheckpointError);
    return e as CheckpointError;
  }
  throw new Error("expected a CheckpointError, nothing was thrown");
}

/** The action throws `[safetensors] <file>: <problem>` with a problem matching `problem`. */
function expectRejected(action: () => unknown, file: string, problem: RegExp): void {
  const e = errorOf(action);
  expect(e.message).toBe(`[safetensors] ${file}: ${e.problem}`);
  expect(e.problem).toMatch(problem);
}

function f32Bits(bits: number[]): Float32Array {
  return new Float32Array(Uint32Array.from(bits).buffer);
}

function roundTrip(tensors: Record<string, Tensor>, dtypes?: Record<string, StorageDType>): SafetensorsFile {
  const file = tmp();
  saveSafetensors(file, tensors, { dtypes });
  return SafetensorsFile.open(file);
}

describe("safetensors: reading a file built by hand", () => {
  const header = {
    __metadata__: { format: "pt" },
    w: entry("F32", [2, 2], 0, 16),
    b: entry("BF16", [3], 16, 22),
    h: entry("F16", [4], 22, 30),
    n: entry("I64", [], 30, 38),
    m: entry("U8", [2], 38, 40),
  };
  const data = [
    ...[0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x40, 0x40],
    ...[0xc0, 0x3f, 0x80, 0xbe, 0x7f, 0x7f],
    ...[0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00],
    ...[0xf9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ...[0x00, 0xff],
  ];

  it("decodes every tensor exactly, with metadata and keys in data order", () => {
    const file = SafetensorsFile.open(handBuilt(`${JSON.stringify(header)}   `, data));
    expect(file.keys()).toEqual(["w", "b", "h", "n", "m"]);
    expect(file.metadata).toEqual({ format: "pt" });
    expect(file.info("h")).toEqual({ dtype: "F16", shape: [4], dataOffsets: [22, 30] });

    const w = file.get("w");
    expect([w.dtype, w.shape, w.toArray()]).toEqual(["float32", [2, 2], [1, -2, 0.5, 3]]);
    const b = file.get("b");
    expect([b.dtype, b.toArray()]).toEqual(["bfloat16", [1.5, -0.25, 3.3895313892515355e38]]);
    const h = file.get("h");
    expect([h.dtype, h.toArray()]).toEqual(["float32", [1, -2, 65504, 2 ** -24]]);
    const n = file.get("n");
    expect([n.dtype, n.shape, n.toArray()]).toEqual(["int32", [], [-7]]);
    expect(file.get("m").toArray()).toEqual([0, 255]);
    file.close();
  });

  it("gives the stored bytes and dtype through getRaw", () => {
    const file = SafetensorsFile.open(handBuilt(JSON.stringify(header), data));
    const raw = file.getRaw("b");
    expect(raw.dtype).toBe("BF16");
    expect(raw.shape).toEqual([3]);
    expect([...raw.bytes]).toEqual([0xc0, 0x3f, 0x80, 0xbe, 0x7f, 0x7f]);
    file.close();
  });

  it("converts on request, and refuses floats as int32", () => {
    const file = SafetensorsFile.open(handBuilt(JSON.stringify(header), data));
    const b = file.get("b", { dtype: "float32" });
    expect([b.dtype, b.toArray()]).toEqual(["float32", [1.5, -0.25, 3.3895313892515355e38]]);
    expect(file.get("n", { dtype: "float64" }).toArray()).toEqual([-7]);
    expect(file.get("w", { dtype: "bfloat16" }).dtype).toBe("bfloat16");
    expectRejected(() => file.get("w", { dtype: "int32" }), file.path, /tensor 'w' \(F32\): float32 .* int32/);
    file.close();
  });

  it("accepts an empty file and zero-size tensors", () => {
    expect(SafetensorsFile.open(handBuilt("{}")).keys()).toEqual([]);
    const file = SafetensorsFile.open(
      handBuilt(JSON.stringify({ e: entry("F32", [0, 3], 0, 0), s: entry("I32", [], 0, 4) }), [5, 0, 0, 0]),
    );
    expect(file.get("e").shape).toEqual([0, 3]);
    expect(file.get("s").item()).toBe(5);
    file.close();
  });
});

describe("safetensors: round trips are bit-exact", () => {
  it("float32, including signed zero, infinities, subnormals and NaN payloads", () => {
    const data = f32Bits([0, 0x80000000, 0x3f800000, 0x7f800000, 0xff800000, 1, 0x7f7fffff, 0x7fc00001, 0xff800001]);
    const file = roundTrip({ x: new Tensor(data, [3, 3], "float32") });
    expect(file.getRaw("x").dtype).toBe("F32");
    const back = file.get("x");
    expect([back.dtype, back.shape]).toEqual(["float32", [3, 3]]);
    expect(bytesOf(back)).toEqual(bytesOf(new Tensor(data, [9], "float32")));
  });

  it("float64", () => {
    const bits = new BigUint64Array([0n, 1n << 63n, 0x3ff0000000000000n, 0x7ff0000000000001n, 1n, 0x7fefffffffffffffn]);
    const data = new Float64Array(bits.buffer);
    const back = roundTrip({ x: new Tensor(data, [6], "float64") }).get("x");
    expect(back.dtype).toBe("float64");
    expect(new BigUint64Array(back.data.buffer, back.data.byteOffset, 6)).toEqual(bits);
  });

  it("bfloat16 is stored as BF16 and read back as bfloat16", () => {
    const data = f32Bits([0x3fc00000, 0xbe800000, 0x7f800000, 0x7f810000, 0xffc10000, 0x00010000, 0x80000000]);
    const file = roundTrip({ x: new Tensor(data, [7], "bfloat16") });
    const raw = file.getRaw("x");
    expect([raw.dtype, raw.bytes.length]).toEqual(["BF16", 14]);
    const back = file.get("x");
    expect(back.dtype).toBe("bfloat16");
    expect(bytesOf(back)).toEqual(new Uint8Array(data.buffer));
  });

  it("every F16 bit pattern survives F16 -> float32 -> F16", () => {
    const halves = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const bytes = new Uint8Array(halves.buffer);
    const source = SafetensorsFile.open(handBuilt(JSON.stringify({ h: entry("F16", [65536], 0, 131072) }), bytes));
    const decoded = source.get("h");
    expect(decoded.dtype).toBe("float32");
    const back = roundTrip({ h: decoded }, { h: "F16" }).getRaw("h");
    expect(back.dtype).toBe("F16");
    expect(back.bytes).toEqual(bytes);
  });

  it("float32 -> F16 rounds to nearest even, overflowing to infinity", () => {
    const values = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 65519, 65520, 2 ** -25, 1.5 * 2 ** -25, -0, -1e-10];
    const raw = roundTrip({ h: tensor(values) }, { h: "F16" }).getRaw("h");
    const halves = new Uint16Array(raw.bytes.buffer, raw.bytes.byteOffset, values.length);
    expect([...halves]).toEqual([0x3c00, 0x3c02, 0x7bff, 0x7c00, 0x0000, 0x0001, 0x8000, 0x8000]);
  });

  it("float32 -> BF16 rounds like the core bfloat16 rounding", () => {
    const values = [1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4e38, -1e-40, Math.PI];
    const back = roundTrip({ x: tensor(values) }, { x: "BF16" }).get("x");
    expect(back.dtype).toBe("bfloat16");
    expect(back.toArray()).toEqual(values.map(toBf16));
  });

  it("int32 through every integer dtype that holds the values", () => {
    const cases: [StorageDType, number[]][] = [
      ["I32", [-(2 ** 31), -1, 0, 1, 2 ** 31 - 1]],
      ["I64", [-(2 ** 31), -1, 0, 1, 2 ** 31 - 1]],
      ["U64", [0, 1, 2 ** 31 - 1]],
      ["U32", [0, 7, 2 ** 31 - 1]],
      ["I16", [-32768, 0, 32767]],
      ["U16", [0, 65535]],
      ["I8", [-128, 0, 127]],
      ["U8", [0, 255]],
      ["BOOL", [0, 1, 1]],
    ];
    for (const [dtype, values] of cases) {
      const file = roundTrip({ x: tensor(values, [values.length], "int32") }, { x: dtype });
      expect(file.info("x").dtype).toBe(dtype);
      const back = file.get("x");
      expect([back.dtype, back.toArray()]).toEqual(["int32", values]);
      file.close();
    }
  });

  it("keeps metadata, scalars and empty tensors, and loadSafetensors reads them all", () => {
    const file = tmp();
    const tensors = { s: tensor(2.5, [], "float64"), e: zeros([2, 0]), i: tensor([1, 2], [2], "int32") };
    saveSafetensors(file, tensors, { metadata: { format: "moekit", step: "10" } });
    const loaded = loadSafetensors(file);
    expect(Object.keys(loaded).sort()).toEqual(["e", "i", "s"]);
    expect([loaded.s!.shape, loaded.s!.item(), loaded.s!.dtype]).toEqual([[], 2.5, "float64"]);
    expect(loaded.e!.shape).toEqual([2, 0]);
    expect(loaded.i!.toArray()).toEqual([1, 2]);
    const opened = SafetensorsFile.open(file);
    expect(opened.metadata).toEqual({ format: "moekit", step: "10" });
    opened.close();
  });
});

describe("safetensors: written files follow the spec", () => {
  it("pads the header with spaces to 8 bytes and lays tensors out in sorted-name order", () => {
    const file = tmp();
    const tensors = { zeta: tensor([1, 2, 3]), alpha: tensor([4], [1], "int32"), mid: tensor([5, 6], [2], "float64") };
    saveSafetensors(file, tensors, { metadata: { k: "v" } });
    const bytes = fs.readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const text = bytes.subarray(8, 8 + n).toString("utf8");
    expect(text.startsWith("{")).toBe(true);
    expect(text.trimEnd().length).toBeGreaterThan(n - 8);
    expect(text.slice(text.trimEnd().length)).toMatch(/^ *$/);
    const header = JSON.parse(text) as Record<string, { data_offsets: number[] }>;
    expect(Object.keys(header)).toEqual(["__metadata__", "alpha", "mid", "zeta"]);
    expect([header.alpha!.data_offsets, header.mid!.data_offsets, header.zeta!.data_offsets]).toEqual([
      [0, 4],
      [4, 20],
      [20, 32],
    ]);
    expect(bytes.length).toBe(8 + n + 32);
    expect(bytes.readDoubleLE(8 + n + 4)).toBe(5);
  });

  it("rejects values that do not fit, floats as integers and bad options, leaving no file", () => {
    const file = tmp();
    const x = tensor([1, 300], [2], "int32");
    const save = (tensors: Record<string, Tensor>, dtypes?: Record<string, StorageDType>) => () =>
      saveSafetensors(file, tensors, { dtypes });
    expectRejected(save({ x }, { x: "U8" }), file, /tensor 'x': value 300 at index 1 does not fit U8/);
    expectRejected(save({ y: tensor([1]) }, { y: "I32" }), file, /float32 .* cannot be stored as I32/);
    expectRejected(save({ x }, { z: "F32" }), file, /dtypes names 'z'/);
    expectRejected(save({ __metadata__: x }), file, /reserved/);
    expect(fs.readdirSync(root).filter((f) => f.startsWith(path.basename(file)))).toEqual([]);
  });
});

describe("safetensors: malformed files are rejected with the file and the problem", () => {
  const f32 = (shape: number[], begin: number, end: number): unknown => entry("F32", shape, begin, end);
  const cases: [string, () => string, RegExp][] = [
    ["an empty header", () => handBuilt(""), /header does not start with '\{'/],
    ["a header length beyond the file", () => handBuilt("{}", [], 1000n), /header length 1000 exceeds the 2 bytes/],
    ["a huge header length", () => handBuilt("{}", [], 1n << 63n), /header length 9223372036854775808 exceeds/],
    ["invalid JSON", () => handBuilt('{"a": {"dtype": '), /not valid JSON/],
    ["a header that is not an object", () => handBuilt("[1, 2]"), /does not start with '\{'/],
    ["an unknown dtype", () => handBuilt(JSON.stringify({ a: entry("F12", [1], 0, 4) }), [0, 0, 0, 0]), /tensor 'a': unknown dtype "F12"/],
    ["an unsupported dtype", () => handBuilt(JSON.stringify({ a: entry("F8_E5M2", [1], 0, 1) }), [0]), /dtype F8_E5M2 is not supported/],
    [
      "a shape that does not match the offsets",
      () => handBuilt(JSON.stringify({ a: f32([3], 0, 8) }), new Array(8).fill(0)),
      /tensor 'a': shape \[3\] of F32 needs 12 bytes but data_offsets \[0, 8\] hold 8/,
    ],
    [
      "overlapping tensors",
      () => handBuilt(JSON.stringify({ a: f32([2], 0, 8), b: f32([2], 4, 12) }), new Array(12).fill(0)),
      /tensors 'a' and 'b' overlap/,
    ],
    [
      "a hole between tensors",
      () => handBuilt(JSON.stringify({ a: f32([1], 0, 4), b: f32([1], 8, 12) }), new Array(12).fill(0)),
      /bytes \[4, 8\) of the data buffer belong to no tensor/,
    ],
    [
      "bytes after the last tensor",
      () => handBuilt(JSON.stringify({ a: f32([1], 0, 4) }), new Array(8).fill(0)),
      /4 bytes after the last tensor/,
    ],
    [
      "a truncated data buffer",
      () => handBuilt(JSON.stringify({ a: f32([4], 0, 16) }), new Array(10).fill(0)),
      /truncated: tensor 'a' ends at byte 16 of the data buffer, which holds only 10 bytes/,
    ],
    ["offsets out of order", () => handBuilt(JSON.stringify({ a: f32([1], 8, 4) })), /data_offsets \[8,4\] is not \[begin, end\]/],
    [
      "a negative dimension",
      () => handBuilt(JSON.stringify({ a: f32([-1], 0, 0) })),
      /shape \[-1\] is not a list of non-negative integers/,
    ],
    [
      "an offset beyond 2^53",
      () => handBuilt(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551616]}}`),
      /data_offsets .* not a list of non-negative integers/,
    ],
    [
      "a non-string metadata value",
      () => handBuilt(JSON.stringify({ __metadata__: { n: 1 } })),
      /__metadata__ value of 'n' is 1, not a string/,
    ],
    [
      "an entry without dtype",
      () => handBuilt(JSON.stringify({ a: { shape: [], data_offsets: [0, 0] } })),
      /tensor 'a': unknown dtype undefined/,
    ],
  ];
  it.each(cases)("%s", (_, make, problem) => {
    const file = make();
    expectRejected(() => SafetensorsFile.open(file), file, problem);
  });

  it("a file shorter than 8 bytes", () => {
    const file = tmp();
    fs.writeFileSync(file, Uint8Array.from([2, 0, 0]));
    expectRejected(() => SafetensorsFile.open(file), file, /truncated: 3 bytes, fewer than the 8-byte header length/);
  });

  it("a header that is not UTF-8", () => {
    const file = handBuilt("{}");
    const bytes = fs.readFileSync(file);
    bytes[8 + 1] = 0xff;
    fs.writeFileSync(file, bytes);
    expectRejected(() => SafetensorsFile.open(file), file, /not valid UTF-8/);
  });

  it("an I64 value beyond int32, naming the tensor", () => {
    const data = [...new Uint8Array(new BigInt64Array([5n, 1n << 32n]).buffer)];
    const file = SafetensorsFile.open(handBuilt(JSON.stringify({ big: entry("I64", [2], 0, 16) }), data));
    const problem = /tensor 'big' \(I64\): value 4294967296 at index 1 does not fit int32/;
    expectRejected(() => file.get("big"), file.path, problem);
    expect(file.getRaw("big").bytes.length).toBe(16);
    file.close();
  });

  it("a file truncated after it was opened, a missing tensor, a closed file, a missing file", () => {
    const path1 = tmp();
    saveSafetensors(path1, { a: tensor([1, 2, 3, 4]), b: tensor([5, 6]) });
    const file = SafetensorsFile.open(path1);
    expectRejected(() => file.get("nope"), path1, /no tensor 'nope' \(the file holds 2: 'a', 'b'\)/);
    fs.truncateSync(path1, fs.statSync(path1).size - 4);
    expectRejected(() => file.get("b"), path1, /truncated: 8 bytes expected at offset \d+, the file ends after 4/);
    file.close();
    expectRejected(() => file.get("a"), path1, /file is closed/);
    const missing = path.join(root, "missing.safetensors");
    expectRejected(() => SafetensorsFile.open(missing), missing, /cannot open \(ENOENT/);
  });
});

describe("safetensors: lazy reads", () => {
  it("opening reads only the header and get reads only the tensor's bytes", () => {
    const file = tmp();
    saveSafetensors(file, { big: zeros([1 << 20]), small: tensor([1, 2, 3, 4]), zbig: zeros([1 << 20]) });
    const headerBytes = 8 + Number(fs.readFileSync(file).readBigUInt64LE(0));
    const readSync = vi.spyOn(fs, "readSync");
    const osBytes = (): number => readSync.mock.results.reduce((sum, r) => sum + (r.value as number), 0);

    const opened = SafetensorsFile.open(file);
    expect(opened.bytesRead).toBe(headerBytes);
    expect(osBytes()).toBe(headerBytes);
    expect(opened.get("small").toArray()).toEqual([1, 2, 3, 4]);
    expect(opened.bytesRead).toBe(headerBytes + 16);
    expect(osBytes()).toBe(headerBytes + 16);
    const lastCall: unknown[] = readSync.mock.calls.at(-1)!;
    expect(lastCall[4]).toBe(headerBytes + 4 * (1 << 20));
    opened.close();
  });
});

describe("safetensors: sharded checkpoints", () => {
  function sample(): Record<string, Tensor> {
    return {
      "layers.0.w": tensor(
        Array.from({ length: 12 }, (_, i) => i * 0.5),
        [3, 4],
      ),
      "layers.0.b": tensor([1, 2, 3, 4]),
      "layers.1.w": tensor(
        Array.from({ length: 12 }, (_, i) => -i),
        [4, 3],
        "bfloat16",
      ),
      "layers.1.ids": tensor([7, -7, 9], [3], "int32"),
      embed: tensor(
        Array.from({ length: 40 }, (_, i) => i / 3),
        [10, 4],
        "float64",
      ),
    };
  }

  it("writes shards under the size limit and an index, and reads every tensor back bit-exactly", () => {
    const dir = tmpDir();
    const tensors = sample();
    const result = saveShardedSafetensors(dir, tensors, { maxShardBytes: 64, metadata: { format: "moekit" } });
    expect(result.shards.length).toBeGreaterThan(2);
    const count = String(result.shards.length).padStart(5, "0");
    expect(path.basename(result.shards[0]!)).toBe(`model-00001-of-${count}.safetensors`);

    const index = JSON.parse(fs.readFileSync(result.indexPath, "utf8")) as {
      metadata: Record<string, unknown>;
      weight_map: Record<string, string>;
    };
    expect(path.basename(result.indexPath)).toBe("model.safetensors.index.json");
    expect(Object.keys(index.weight_map).sort()).toEqual(Object.keys(tensors).sort());
    expect(index.metadata).toEqual({ format: "moekit", total_size: 320 + 48 + 16 + 24 + 12 });
    for (const shard of result.shards) {
      const file = SafetensorsFile.open(shard);
      const size = fs.statSync(shard).size - file.bytesRead;
      expect(size <= 64 || file.keys().length === 1).toBe(true);
      expect(file.metadata).toEqual({ format: "moekit" });
      file.close();
    }

    for (const location of [dir, result.indexPath]) {
      const ckpt = SafetensorsCheckpoint.open(location);
      expect(ckpt.keys()).toEqual(Object.keys(tensors).sort());
      expect(ckpt.metadata).toEqual(index.metadata);
      for (const [name, t] of Object.entries(tensors)) {
        const back = ckpt.get(name);
        expect([back.dtype, back.shape]).toEqual([t.dtype, t.shape]);
        expect(bytesOf(back)).toEqual(bytesOf(t));
      }
      ckpt.close();
    }
  });

  it("opens only the shard that holds the requested tensor", () => {
    const dir = tmpDir();
    saveShardedSafetensors(dir, sample(), { maxShardBytes: 64 });
    const ckpt = SafetensorsCheckpoint.open(dir);
    expect(ckpt.openShards).toEqual([]);
    expect(ckpt.get("layers.1.ids").toArray()).toEqual([7, -7, 9]);
    expect(ckpt.openShards).toEqual([ckpt.shardOf("layers.1.ids")]);
    expect(ckpt.info("layers.1.w").dtype).toBe("BF16");
    expect(ckpt.openShards.length).toBeLessThanOrEqual(2);
    ckpt.close();
    expect(ckpt.openShards).toEqual([]);
  });

  it("applies per-tensor dtypes and gives a tensor above the limit a shard of its own", () => {
    const dir = tmpDir();
    const result = saveShardedSafetensors(
      dir,
      { a: tensor([1, 2]), huge: zeros([100]), z: tensor([3]) },
      { maxShardBytes: 16, dtypes: { huge: "BF16", z: "F16" }, prefix: "ckpt" },
    );
    expect(result.shards.map((s) => path.basename(s))).toEqual([
      "ckpt-00001-of-00003.safetensors",
      "ckpt-00002-of-00003.safetensors",
      "ckpt-00003-of-00003.safetensors",
    ]);
    expect(result.totalSize).toBe(8 + 200 + 2);
    const ckpt = SafetensorsCheckpoint.open(result.indexPath);
    expect(ckpt.getRaw("huge").dtype).toBe("BF16");
    expect(ckpt.get("z").toArray()).toEqual([3]);
    ckpt.close();
  });

  it("opens a single file and a directory of files without an index", () => {
    const dir = tmpDir();
    saveSafetensors(path.join(dir, "a.safetensors"), { x: tensor([1]) }, { metadata: { m: "1" } });
    saveSafetensors(path.join(dir, "b.safetensors"), { y: tensor([2]) });
    const single = SafetensorsCheckpoint.open(path.join(dir, "a.safetensors"));
    expect([single.keys(), single.metadata]).toEqual([["x"], { m: "1" }]);
    single.close();
    const both = SafetensorsCheckpoint.open(dir);
    expect(both.keys()).toEqual(["x", "y"]);
    expect(both.get("y").toArray()).toEqual([2]);
    both.close();
  });

  it("rejects broken checkpoints, naming the file and the problem", () => {
    const dir = tmpDir();
    const { indexPath } = saveShardedSafetensors(dir, sample(), { maxShardBytes: 64 });
    const index = JSON.parse(fs.readFileSync(indexPath, "utf8")) as { weight_map: Record<string, string> };
    const writeIndex = (content: unknown): string => {
      const p = path.join(dir, `${counter++}.safetensors.index.json`);
      fs.writeFileSync(p, typeof content === "string" ? content : JSON.stringify(content));
      return p;
    };
    const bad = writeIndex("{ not json");
    expectRejected(() => SafetensorsCheckpoint.open(bad), bad, /index is not valid JSON/);
    const noMap = writeIndex({ metadata: {} });
    expectRejected(() => SafetensorsCheckpoint.open(noMap), noMap, /weight_map is undefined, not an object/);
    const missing = writeIndex({ weight_map: { a: "gone.safetensors" } });
    expectRejected(() => SafetensorsCheckpoint.open(missing), missing, /'gone.safetensors', which does not exist/);
    const escape = writeIndex({ weight_map: { a: "../x.safetensors" } });
    expectRejected(() => SafetensorsCheckpoint.open(escape), escape, /outside the checkpoint directory/);

    const lying = writeIndex({ weight_map: { ...index.weight_map, ghost: index.weight_map["embed"] } });
    const ckpt = SafetensorsCheckpoint.open(lying);
    const shard = ckpt.shardOf("ghost");
    expectRejected(() => ckpt.get("ghost"), shard, /the index maps tensor 'ghost' here but the file has no such/);
    expectRejected(() => ckpt.get("nope"), lying, /no tensor 'nope' in the checkpoint/);
    ckpt.close();

    const twoIndexes = tmpDir();
    for (const name of ["a", "b"]) fs.writeFileSync(path.join(twoIndexes, `${name}.safetensors.index.json`), "{}");
    expectRejected(() => SafetensorsCheckpoint.open(twoIndexes), twoIndexes, /several index files/);
    const empty = tmpDir();
    expectRejected(() => SafetensorsCheckpoint.open(empty), empty, /no model.safetensors.index.json and no /);
    const dup = tmpDir();
    saveSafetensors(path.join(dup, "a.safetensors"), { x: tensor([1]) });
    saveSafetensors(path.join(dup, "b.safetensors"), { x: tensor([2]) });
    expectRejected(() => SafetensorsCheckpoint.open(dup), dup, /tensor 'x' is in both .*a.safetensors and .*b.safet/);
  });
});
