// The native fp32 -> bf16 bit conversion (f32ToBf16Bits, used for bf16 weights) against its TypeScript spec
// (bf16BitsRef): bit for bit on edge values (ties, denormals, overflow to inf, NaN payloads) and on random bit
// patterns spanning several of the kernel's chunks (so several threads). The same for the rounding in float32
// storage (roundBf16F32, the native cast to bfloat16) against the dispatcher's roundBf16InPlace.
import { describe, expect, it } from "vitest";
import { nativeBinding } from "../../src/backends/native/binding.js";
const binding = nativeBinding();
import { nativeInfo } from "../../src/backends/native/index.js";
import { bf16BitsRef, roundBf16InPlace } from "../../src/core/dtype.js";
import { useBackend } from "../../src/backends/select.js";
import { tensor, Tensor } from "../../src/core/tensor.js";
import { cast } from "../../src/ops/elementwise.js";
import { reshape } from "../../src/ops/movement.js";
import { Rng } from "../harness/random.js";

const info = nativeInfo();

function fromBits(bits: number[]): Float32Array {
  return new Float32Array(Uint32Array.from(bits).buffer);
}

describe.skipIf(!info.available)(`native f32ToBf16Bits${info.available ? "" : ` (skipped: ${info.reason})`}`, () => {
  const b = binding!;
  const native = (x: Float32Array): Uint16Array => {
    const out = new Uint16Array(x.length);
    b.f32ToBf16Bits(x, out);
    return out;
  };

  it("matches the TypeScript spec on edge values", () => {
    const edges = fromBits([
      0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x00008000, 0x00018000, 0x3f808000, 0x3f818000, 0x3f807fff,
      0x3f808001, 0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffa00001, 0x7fffffff,
    ]);
    const got = native(edges);
    expect(Array.from(got)).toEqual(Array.from(bf16BitsRef(edges)));
    // spot values: ties to even, overflow to inf, quieted NaNs
    expect(got[6]).toBe(0x3f80); // 1.00390625 halfway, even stays
    expect(got[7]).toBe(0x3f82); // halfway above an odd mantissa rounds up
    expect(got[10]).toBe(0x7f80); // the largest float rounds to +inf
    expect(got[15]).toBe(0x7fc0); // a signalling NaN with a low payload becomes the quiet NaN
    expect(got[16]).toBe(0xffe0);
  });

  it("matches it on random bit patterns across chunks", () => {
    const n = 3 * (1 << 18) + 12345;
    const x = new Float32Array(new Rng(12345).bits(n).buffer);
    const got = native(x);
    const want = bf16BitsRef(x);
    let mismatches = 0;
    for (let i = 0; i < n; i++) mismatches += got[i] === want[i] ? 0 : 1;
    expect(mismatches).toBe(0);
  });

  it("checks its arguments", () => {
    expect(() => b.f32ToBf16Bits(new Float32Array(4), new Uint16Array(3))).toThrow(/dst has 3 elements, expected 4/);
    expect(() => b.f32ToBf16Bits(new Float32Array(4), new Int16Array(4) as unknown as Uint16Array)).toThrow(/Uint16Array/);
  });
});

describe.skipIf(!info.available)(`native cast to bfloat16${info.available ? "" : ` (skipped: ${info.reason})`}`, () => {
  const b = binding!;
  const bits = (x: Float32Array): number[] => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));
  const edges = [
    0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x00008000, 0x00018000, 0x3f808000, 0x3f818000, 0x3f807fff, 0x3f808001,
    0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffa00001, 0x7fffffff,
  ];

  it("roundBf16F32 is roundBf16InPlace bit for bit (NaN payloads kept), apart and in place, across chunks", () => {
    const n = 3 * (1 << 18) + 777;
    const x = new Float32Array(new Rng(99).bits(n).buffer);
    x.set(fromBits(edges));
    const want = x.slice();
    roundBf16InPlace(want);
    const apart = new Float32Array(n);
    b.roundBf16F32(x, apart);
    expect(bits(apart)).toEqual(bits(want));
    b.roundBf16F32(x, x);
    expect(bits(x)).toEqual(bits(want));
  });

  // NaN for NaNs: the reference's cast reads values through doubles, which makes signalling NaNs quiet
  const valueBits = (x: Float32Array): (number | string)[] => bits(x).map((u, i) => (Number.isNaN(x[i]) ? "NaN" : u));

  it("a float32 -> bfloat16 cast gives the reference's bits on native (rounded by the kernel), and a reshape keeps them", () => {
    const x = new Tensor(new Float32Array(new Rng(5).bits(4096).buffer), [64, 64], "float32");
    x.data.set(fromBits(edges));
    const want = valueBits(cast(x, "bfloat16").data as Float32Array);
    useBackend("native");
    try {
      const y = cast(x, "bfloat16");
      expect(y.dtype).toBe("bfloat16");
      expect(valueBits(y.data as Float32Array)).toEqual(want);
      expect(valueBits(reshape(y, [4096]).data as Float32Array)).toEqual(want);
      const small = tensor([1.00390625, 3.3], [2], "float32"); // below the native elementwise size: ref's cast
      expect(Array.from(cast(small, "bfloat16").data)).toEqual([1, 3.296875]);
    } finally {
      useBackend("ref");
    }
  });
});
