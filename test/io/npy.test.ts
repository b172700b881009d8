import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Tensor, tensor } from "../../src/core/tensor.js";
import { CheckpointError, readNpy, writeNpy } from "../../src/io/index.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "moekit-npy-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

let counter = 0;
function tmp(): string {
  return path.join(root, `${counter++}.npy`);
}

/**
 * An .npy file built by hand from the format description: magic, version, header length (u16 for
 * version 1, u32 for 2), the header padded with spaces and a newline to a multiple of 64, then data.
 */
function handBuilt(header: string, data: ArrayLike<number> | ArrayBufferView = [], version = 1): string {
  const preamble = version === 1 ? 10 : 12;
  const padded = Math.ceil((preamble + header.length + 1) / 64) * 64;
  const text = `${header}${" ".repeat(padded - preamble - header.length - 1)}\n`;
  const head = Buffer.alloc(preamble);
  head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]); // "\x93NUMPY", version major.minor
  if (version === 1) head.writeUInt16LE(text.length, 8);
  else head.writeUInt32LE(text.length, 8);
  const body = ArrayBuffer.isView(data) ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.from(Uint8Array.from(data));
  const file = tmp();
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(text, "latin1"), body]));
  return file;
}

/** `file` with its bytes edited by `edit`. */
function patched(file: string, edit: (bytes: Buffer) => void): string {
  const bytes = fs.readFileSync(file);
  edit(bytes);
  fs.writeFileSync(file, bytes);
  return file;
}

function rawFile(bytes: string | Uint8Array): string {
  const file = tmp();
  fs.writeFileSync(file, bytes);
  return file;
}

const dict = (descr: string, shape: string, fortran = "False"): string =>
  `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;

function bytesOf(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

function expectRejected(file: string, problem: RegExp): void {
  let error: unknown;
  try {
    readNpy(file);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(CheckpointError);
  const e = error as CheckpointError;
  expect(e.message).toBe(`[npy] ${file}: ${e.problem}`);
  expect(e.problem).toMatch(problem);
}

describe("npy: reading files built by hand", () => {
  it("reads <f4 in C order", () => {
    const t = readNpy(handBuilt(dict("<f4", "(2, 3)"), new Float32Array([1, 2, 3, -4, 0.5, 6])));
    expect([t.dtype, t.shape, t.toArray()]).toEqual(["float32", [2, 3], [1, 2, 3, -4, 0.5, 6]]);
  });

  it("reads <f8, <f2, <i8, |u1, |b1 and <u2", () => {
    const f8 = readNpy(handBuilt(dict("<f8", "(2,)"), new Float64Array([0.1, -1e300])));
    expect([f8.dtype, f8.toArray()]).toEqual(["float64", [0.1, -1e300]]);
    const f2 = readNpy(handBuilt(dict("<f2", "(3,)"), [0x00, 0x3c, 0x00, 0xc0, 0x00, 0x7c]));
    expect([f2.dtype, f2.toArray()]).toEqual(["float32", [1, -2, Infinity]]);
    const i8 = readNpy(handBuilt(dict("<i8", "(3,)"), new BigInt64Array([-1n, 2147483647n, -2147483648n])));
    expect([i8.dtype, i8.toArray()]).toEqual(["int32", [-1, 2147483647, -2147483648]]);
    expect(readNpy(handBuilt(dict("|u1", "(2,)"), [0, 255])).toArray()).toEqual([0, 255]);
    expect(readNpy(handBuilt(dict("|b1", "(2,)"), [1, 0])).toArray()).toEqual([1, 0]);
    expect(readNpy(handBuilt(dict("<u2", "(1,)"), [0xff, 0xff])).toArray()).toEqual([65535]);
  });

  it("reads version 2.0, 0-d arrays, empty arrays and Python 2 style long shapes", () => {
    const scalar = readNpy(handBuilt(dict("<i4", "()"), new Int32Array([42]), 2));
    expect([scalar.shape, scalar.item()]).toEqual([[], 42]);
    expect(readNpy(handBuilt(dict("<f4", "(0, 3)"))).shape).toEqual([0, 3]);
    const long = readNpy(handBuilt(`{"descr": "<i4", "fortran_order": False, "shape": (2L,)}`, new Int32Array([1, 2])));
    expect(long.toArray()).toEqual([1, 2]);
  });
});

describe("npy: round trips", () => {
  it("float32, float64 and int32 are bit-exact", () => {
    const f32 = new Float32Array(new Uint32Array([0, 0x80000000, 0x7f800000, 1, 0x7fc00001, 0x3f800000]).buffer);
    const cases = [
      new Tensor(f32, [2, 3], "float32"),
      new Tensor(new Float64Array([Math.PI, -0, Number.MIN_VALUE, NaN]), [4], "float64"),
      tensor([-(2 ** 31), 0, 2 ** 31 - 1], [3, 1], "int32"),
      tensor(5, [], "float32"),
    ];
    for (const t of cases) {
      const file = tmp();
      writeNpy(file, t);
      const back = readNpy(file);
      expect([back.dtype, back.shape]).toEqual([t.dtype, t.shape]);
      expect(bytesOf(back)).toEqual(bytesOf(t));
    }
  });

  it("bfloat16 is written as <f4 with the same values; other descrs on request", () => {
    const file = tmp();
    const bf = tensor([1.5, -3, 0.0078125], [3], "bfloat16");
    writeNpy(file, bf);
    expect([readNpy(file).dtype, readNpy(file).toArray()]).toEqual(["float32", bf.toArray()]);
    expect(readNpy(file, { dtype: "bfloat16" }).dtype).toBe("bfloat16");

    for (const descr of ["<i8", "|u1", "<u2", "<i2", "|i1", "<u4", "<u8", "|b1"]) {
      writeNpy(file, tensor([0, 1, 1], [3], "int32"), { descr, overwrite: true });
      expect(readNpy(file).toArray()).toEqual([0, 1, 1]);
    }
    writeNpy(file, tensor([1, -2, 65504]), { descr: "<f2", overwrite: true });
    expect(readNpy(file).toArray()).toEqual([1, -2, 65504]);
  });

  it("writes the header NumPy writes", () => {
    const file = tmp();
    writeNpy(file, tensor([1, 2, 3, 4, 5, 6], [2, 3]));
    const bytes = fs.readFileSync(file);
    expect([...bytes.subarray(0, 8)]).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
    const length = bytes.readUInt16LE(8);
    expect((10 + length) % 64).toBe(0);
    const header = bytes.subarray(10, 10 + length).toString("latin1");
    expect(header).toMatch(/^\{'descr': '<f4', 'fortran_order': False, 'shape': \(2, 3\), \} *\n$/);
    expect(bytes.length).toBe(10 + length + 24);
    writeNpy(file, tensor([1, 2, 3, 4, 5]), { overwrite: true });
    expect(fs.readFileSync(file).toString("latin1")).toContain("'shape': (5,), }");
    writeNpy(file, tensor(1, [], "int32"), { overwrite: true });
    const scalarHeader = "{'descr': '<i4', 'fortran_order': False, 'shape': (), }";
    expect(fs.readFileSync(file).toString("latin1")).toContain(scalarHeader);
  });

  it("refuses values that do not fit the requested descr and unknown descrs", () => {
    const file = tmp();
    expect(() => writeNpy(file, tensor([1, 256], [2], "int32"), { descr: "|u1" })).toThrow(
      `[npy] ${file}: value 256 at index 1 does not fit U8 [0, 255]`,
    );
    expect(() => writeNpy(file, tensor([1]), { descr: "<c8" })).toThrow(/dtype '<c8' is not supported/);
    expect(fs.existsSync(file)).toBe(false);
  });
});

describe("npy: malformed files are rejected with the file and the problem", () => {
  const cases: [string, () => string, RegExp][] = [
    ["bad magic", () => rawFile("PK\x03\x04 not npy at all"), /not an .npy file/],
    [
      "an unknown version",
      () => patched(handBuilt(dict("<f4", "(1,)"), [0, 0, 0, 0]), (b) => (b[6] = 4)),
      /format version 4.0 is not supported/,
    ],
    ["fortran order", () => handBuilt(dict("<f4", "(2, 2)", "True"), new Float32Array(4)), /fortran_order is True; only C-order/],
    ["big-endian data", () => handBuilt(dict(">f4", "(1,)"), [0, 0, 0, 0]), /big-endian dtype '>f4'/],
    ["an unsupported descr", () => handBuilt(dict("<c8", "(1,)"), new Float32Array(2)), /dtype '<c8' is not supported/],
    [
      "a structured dtype",
      () => handBuilt(`{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }`),
      /structured arrays are not supported/,
    ],
    [
      "truncated data",
      () => handBuilt(dict("<f4", "(2, 3)"), new Float32Array(5)),
      /truncated: shape \(2, 3\) of F32 needs 24 data bytes, the file holds 20/,
    ],
    ["bytes after the data", () => handBuilt(dict("<f4", "(1,)"), new Float32Array(2)), /4 unexpected bytes after the 4 data bytes/],
    [
      "a header length beyond the file",
      () => patched(handBuilt(dict("<f4", "()"), new Float32Array(1)), (b) => b.writeUInt16LE(5000, 8)),
      /header length 5000 exceeds/,
    ],
    ["a malformed header", () => handBuilt("{'descr': '<f4', 'shape': (1,"), /header .* is malformed/],
    ["a missing key", () => handBuilt(`{'descr': '<f4', 'shape': (1,), }`, new Float32Array(1)), /header keys are \{descr, shape\}/],
    [
      "an extra key",
      () => handBuilt(`{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}`, new Float32Array(1)),
      /header keys are/,
    ],
    ["a negative dimension", () => handBuilt(dict("<f4", "(-1,)")), /shape \[-1\] is not a tuple of non-negative integers/],
    [
      "an int64 value beyond int32",
      () => handBuilt(dict("<i8", "(1,)"), new BigInt64Array([1n << 40n])),
      /data \(I64\): value 1099511627776 at index 0 does not fit int32/,
    ],
    [
      "a file shorter than the preamble",
      () => rawFile(Uint8Array.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 5])),
      /truncated: 9 bytes, fewer than the 10-byte preamble/,
    ],
    ["a missing file", () => path.join(root, "nope.npy"), /cannot open \(ENOENT/],
  ];
  it.each(cases)("%s", (_, make, problem) => expectRejected(make(), problem));
});
