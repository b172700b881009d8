// Bits-backed bfloat16 tensors: a checkpoint's BF16 tensors load as their 16-bit patterns (2 bytes per element),
// the layout transforms move those bits, saving writes them back unchanged, and the native fused FFN multiplies
// them without ever widening them to float32. Everything that reads `data` sees the exact float32 values.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { nativeInfo } from "../../src/backends/native/index.js";
import { useBackend } from "../../src/backends/select.js";
import { makeLeaf, stopGradient } from "../../src/autodiff/graph.js";
import { joinAxis, splitAxis, stackTransposed, indexAxis0, transposeLast2, withDtype } from "../../src/checkpoint/transforms.js";
import { roundBf16InPlace } from "../../src/core/dtype.js";
import { recycle, recycledBytes, releaseRecycled } from "../../src/core/pool.js";
import { defaultKernelInit, ndDenseInit } from "../../src/nn/init.js";
import { prngKey } from "../../src/nn/random.js";
import { Tensor } from "../../src/core/tensor.js";
import { loadSafetensors, saveSafetensors } from "../../src/io/safetensors.js";
import { decode, encode } from "../../src/parallel/wire.js";
import { moeConfig } from "../../src/moe/config.js";
import { routedMoeForward } from "../../src/moe/routed-moe.js";
import { Rng } from "../harness/random.js";

/** Random bf16 bit patterns: finite values of both signs and many exponents, plus +-0, +-inf, a NaN and denormals. */
function randomBits(n: number, seed: number): Uint16Array {
  const words = new Rng(seed).bits(n);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const s = words[i]!;
    const sign = (s >>> 31) << 15;
    const exp = 100 + ((s >>> 8) % 40); // |x| around 2^-27 .. 2^12
    out[i] = sign | (exp << 7) | (s & 0x7f);
  }
  const specials = [0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc1, 0x0001, 0x807f];
  for (let i = 0; i < specials.length && i < n; i++) out[i * 3] = specials[i]!;
  return out;
}

const widen = (bits: Uint16Array): Float32Array => new Float32Array(Uint32Array.from(bits, (b) => b << 16).buffer);
const bitsOf = (x: Float32Array): number[] => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));

describe("bits-backed bfloat16 tensors", () => {
  it("widen exactly on the first read of data, and not before", () => {
    const bits = randomBits(60, 1);
    const t = new Tensor(bits, [3, 4, 5], "bfloat16");
    expect(t.materialized).toBe(false);
    expect(t.size).toBe(60);
    expect(t.ndim).toBe(3);
    expect(t.bf16Bits).toBe(bits);
    expect(t.materialized).toBe(false);
    expect(bitsOf(t.data as Float32Array)).toEqual(bitsOf(widen(bits)));
    expect(t.materialized).toBe(true);
    expect(t.data).toBe(t.data);
  });

  it("are never handed to the storage pool, even once widened (other tensors share the widened copy)", () => {
    releaseRecycled();
    const t = new Tensor(randomBits(1 << 19, 9), [1 << 19], "bfloat16");
    const widenedCopy = Float32Array.from(t.data);
    const twin = t.sameStorage();
    const bits = t.bf16Bits!;
    recycle(t, twin);
    expect(recycledBytes()).toBe(0);
    expect(() => twin.data).toThrow(/used after recycle/);
    const later = new Tensor(bits, [1 << 19], "bfloat16");
    expect(bitsOf(later.data as Float32Array)).toEqual(bitsOf(widenedCopy));
    releaseRecycled();
  });

  it("reject a Uint16Array for any dtype but bfloat16, and a wrong length", () => {
    expect(() => new Tensor(new Uint16Array(4), [4], "float32")).toThrow(/bfloat16/);
    expect(() => new Tensor(new Uint16Array(5), [4], "bfloat16")).toThrow(/5 elements/);
  });

  it("keep their bits through autodiff leaves, stopGradient and the thread wire", () => {
    const t = new Tensor(randomBits(12, 2), [3, 4], "bfloat16");
    const leaf = makeLeaf(t);
    expect(leaf.bf16Bits).toBe(t.bf16Bits);
    expect(leaf.materialized).toBe(false);
    const detached = stopGradient(leaf);
    expect(detached.bf16Bits).toBe(t.bf16Bits);
    // tensors over the same bits share one widened copy
    expect(leaf.data).toBe(t.data);
    expect(detached.materialized).toBe(true);
    const u = new Tensor(randomBits(12, 2), [3, 4], "bfloat16");
    const back = decode(structuredClone(encode(u))) as Tensor;
    expect(back.dtype).toBe("bfloat16");
    expect(Array.from(back.bf16Bits!)).toEqual(Array.from(u.bf16Bits!));
    expect(u.materialized).toBe(false);
  });

  it("move through every layout transform as bits, with the values of the float32-backed twin", () => {
    const bits = randomBits(2 * 6 * 8, 3);
    const b = (): Tensor => new Tensor(bits, [2, 6, 8], "bfloat16");
    const f = (): Tensor => new Tensor(widen(bits), [2, 6, 8], "bfloat16");
    const same = (x: Tensor, y: Tensor): void => {
      expect(x.bf16Bits).toBeDefined();
      expect(x.materialized).toBe(false);
      expect(y.bf16Bits).toBeUndefined();
      expect(x.shape).toEqual(y.shape);
      expect(x.dtype).toBe("bfloat16");
      expect(bitsOf(x.data as Float32Array)).toEqual(bitsOf(y.data as Float32Array));
    };
    same(transposeLast2(b()), transposeLast2(f()));
    same(indexAxis0(b(), 1), indexAxis0(f(), 1));
    for (const mode of ["halves", "interleave"] as const) {
      const [p, q] = splitAxis(b(), 2, mode);
      const [r, s] = splitAxis(f(), 2, mode);
      same(p, r);
      same(q, s);
      same(joinAxis(p, q, 2, mode), joinAxis(r, s, 2, mode));
      expect(Array.from(joinAxis(p, q, 2, mode).bf16Bits!)).toEqual(Array.from(bits));
    }
    const experts = [0, 1].map((e) => indexAxis0(b(), e));
    same(
      stackTransposed(2, (e) => experts[e]!, [6, 8]),
      stackTransposed(2, (e) => indexAxis0(f(), e), [6, 8]),
    );
    // a float32-backed expert among bits-backed ones is converted exactly
    const mixed = stackTransposed(2, (e) => (e === 0 ? experts[0]! : indexAxis0(f(), 1)), [6, 8]);
    same(
      mixed,
      stackTransposed(2, (e) => indexAxis0(f(), e), [6, 8]),
    );
    const f32 = withDtype(b(), "float32");
    expect(f32.dtype).toBe("float32");
    expect(bitsOf(f32.data as Float32Array)).toEqual(bitsOf(widen(bits)));
  });
});

describe("bfloat16 weights from the initialisers", () => {
  it("are bits-backed, with the float32 initialiser's values rounded to bf16", () => {
    for (const init of [defaultKernelInit, ndDenseInit(2.0, "fan_avg", "uniform"), ndDenseInit(0.5, "fan_out", "normal")]) {
      const b = init(prngKey(7), [4, 6, 8], "bfloat16", [1], [2]);
      const f = init(prngKey(7), [4, 6, 8], "float32", [1], [2]);
      expect(b.dtype).toBe("bfloat16");
      expect(b.bf16Bits).toBeDefined();
      expect(b.materialized).toBe(false);
      const want = Float32Array.from(f.data);
      roundBf16InPlace(want);
      expect(bitsOf(b.data as Float32Array)).toEqual(bitsOf(want));
      expect(new Set(bitsOf(want)).size).toBeGreaterThan(100);
    }
  });
});

describe("BF16 checkpoint tensors", () => {
  const dir = mkdtempSync(join(tmpdir(), "moekit-bf16-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("load bits-backed and save back byte for byte", () => {
    const bits = randomBits(7 * 9, 4);
    const src = join(dir, "a.safetensors");
    saveSafetensors(src, { w: new Tensor(widen(bits), [7, 9], "bfloat16") });
    const loaded = loadSafetensors(src);
    const w = loaded.w!;
    expect(w.dtype).toBe("bfloat16");
    expect(w.materialized).toBe(false);
    expect(Array.from(w.bf16Bits!)).toEqual(Array.from(bits));
    const again = join(dir, "b.safetensors");
    saveSafetensors(again, loaded);
    expect(w.materialized).toBe(false);
    expect(Buffer.compare(readFileSync(src), readFileSync(again))).toBe(0);
    // read as float32 on request: the exact values
    const asF32 = loadSafetensors(src, { dtype: "float32" }).w!;
    expect(asF32.dtype).toBe("float32");
    expect(bitsOf(asF32.data as Float32Array)).toEqual(bitsOf(widen(bits)));
    const asF64 = loadSafetensors(src, { dtype: "float64" }).w!;
    expect(Array.from(asF64.data).slice(0, 20)).toEqual(Array.from(widen(bits)).slice(0, 20));
  });
});

const info = nativeInfo();

describe.skipIf(!info.available)(`native fused FFN on bits-backed weights${info.available ? "" : ` (skipped: ${info.reason})`}`, () => {
  afterAll(() => void useBackend("ref"));

  it("gives the float32-backed twin's output bit for bit and never widens the expert weights", () => {
    useBackend("native");
    const E = 4;
    const D = 16;
    const H = 24;
    const cfg = moeConfig({
      num_experts: E,
      num_experts_per_tok: 2,
      emb_dim: D,
      moe_mlp_dim: H,
      dtype: "float32",
      weight_dtype: "bfloat16",
    });
    const scaled = (n: number, seed: number, scale: number): Uint16Array => {
      // bf16 weights of a sane size: the random patterns rescaled, then rounded back to bf16 bits
      const x = widen(randomBits(n, seed)).map((v) => (Number.isFinite(v) ? Math.tanh(v) * scale : 0));
      roundBf16InPlace(x);
      return Uint16Array.from(new Uint32Array(x.buffer), (u) => u >>> 16);
    };
    const wbits = { wi0: scaled(E * D * H, 5, 0.2), wi1: scaled(E * D * H, 6, 0.2), wo: scaled(E * H * D, 7, 0.2) };
    const gate = new Tensor(widen(scaled(D * E, 8, 0.5)), [D, E], "float32");
    const x = new Tensor(widen(scaled(3 * 5 * D, 9, 1)), [3, 5, D], "float32");
    const bitsW = {
      gateKernel: gate,
      wi0: new Tensor(wbits.wi0, [E, D, H], "bfloat16"),
      wi1: new Tensor(wbits.wi1, [E, D, H], "bfloat16"),
      wo: new Tensor(wbits.wo, [E, H, D], "bfloat16"),
    };
    const f32W = {
      gateKernel: gate,
      wi0: new Tensor(widen(wbits.wi0), [E, D, H], "bfloat16"),
      wi1: new Tensor(widen(wbits.wi1), [E, D, H], "bfloat16"),
      wo: new Tensor(widen(wbits.wo), [E, H, D], "bfloat16"),
    };
    const a = routedMoeForward(cfg, bitsW, x).output;
    const b = routedMoeForward(cfg, f32W, x).output;
    expect(bitsOf(a.data as Float32Array)).toEqual(bitsOf(b.data as Float32Array));
    expect(Array.from(a.data).some((v) => v !== 0)).toBe(true);
    for (const k of ["wi0", "wi1", "wo"] as const) expect(bitsW[k].materialized).toBe(false);
  });
});
