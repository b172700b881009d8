// The native integer kernels of the quantized matmuls against the reference kernels: int8 products (gmm and bmm on
// int32 operands in int8 range) exactly, on the VNNI unit and on plain loops (isa scalar), and abs-max quantization
// bit for bit (both flavours, stochastic rounding, slices of every layout the kernel takes).
import fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { nativeBinding } from "../../src/backends/native/binding.js";
import { nativeBackend, nativeInfo } from "../../src/backends/native/index.js";
import { refBackend } from "../../src/backends/ref/index.js";
import { Tensor } from "../../src/core/tensor.js";
import { Prim, type Params } from "../../src/prims/prims.js";
import { shapeRules } from "../../src/prims/shape-rules.js";
import { Rng } from "../harness/random.js";

const info = nativeInfo();

function ints(shape: number[], lo: number, hi: number, seed: number): Tensor {
  return new Tensor(Int32Array.from(new Rng(seed).randint(shape, lo, hi).data), shape, "int32");
}

/** Outputs of `prim` on the native backend and on ref, after checking native supports these inputs. */
function both<P extends Prim>(prim: P, ins: Tensor[], params: Params<P>): [ArrayLike<number>[], ArrayLike<number>[]] {
  const nb = nativeBackend()!;
  expect(nb.supports(prim, ins, params)).toBe(true);
  const avals = shapeRules[prim](ins, params);
  return [nb.run(prim, ins, params, avals), refBackend.run(prim, ins, params, avals)];
}

describe.skipIf(!info.available)(`native int8 kernels${info.available ? "" : ` (skipped: ${info.reason})`}`, () => {
  const b = nativeBinding()!;
  afterEach(() => b.setIsa(info.isa!));
  const isas = info.isa === "avx512" ? ["avx512", "scalar"] : [info.isa!];

  for (const isa of isas) {
    it(`gmm and bmm of int8-range int32 operands equal the reference exactly (isa ${isa})`, () => {
      b.setIsa(isa as "scalar");
      // k across the 4-byte quads and n across the 64-column panels; a group of 0 rows; rows past the groups
      for (const [m, k, n, sizes] of [
        [9, 7, 70, [3, 0, 5]],
        [33, 130, 129, [10, 23]],
        [4, 1, 1, [4]],
      ] as [number, number, number, number[]][]) {
        const lhs = ints([m, k], -128, 128, m + k);
        const rhs = ints([sizes.length, k, n], -128, 128, n);
        const gs = new Tensor(Int32Array.from(sizes), [sizes.length], "int32");
        for (const transposeRhs of [false, true]) {
          const r = transposeRhs ? ints([sizes.length, n, k], -128, 128, n + 1) : rhs;
          const [nat, ref] = both(Prim.Gmm, [lhs, r, gs], { transposeRhs });
          expect(Array.from(nat[0]!)).toEqual(Array.from(ref[0]!));
        }
      }
      const [nat, ref] = both(Prim.BatchMatmul, [ints([3, 5, 66], -128, 128, 1), ints([3, 66, 17], -128, 128, 2)], {} as never);
      expect(Array.from(nat[0]!)).toEqual(Array.from(ref[0]!));
    });
  }

  it("the int32 sums stay exact where float32 would not (k = 4096 at the int8 extremes)", () => {
    const k = 4096;
    const lhs = new Tensor(new Int32Array(k).fill(-128), [1, k], "int32");
    const rhs = new Tensor(new Int32Array(k).map((_, i) => (i % 3 === 0 ? -127 : -128)), [1, k, 1], "int32");
    const gs = new Tensor(Int32Array.of(1), [1], "int32");
    const [nat] = both(Prim.Gmm, [lhs, rhs, gs], { transposeRhs: false });
    let want = 0;
    for (let i = 0; i < k; i++) want += 128 * (i % 3 === 0 ? 127 : 128);
    expect(want).toBeGreaterThan(2 ** 24);
    expect(nat[0]![0]).toBe(want);
  });

  it("int32 operands outside int8 range stay on the reference kernels", () => {
    const nb = nativeBackend()!;
    const gs = new Tensor(Int32Array.of(2), [1], "int32");
    const over = new Tensor(Int32Array.of(1, 2, 3, 4, 128, 6), [2, 3], "int32");
    expect(nb.supports(Prim.Gmm, [over, ints([1, 3, 2], 0, 1, 2), gs], { transposeRhs: false })).toBe(false);
    expect(nb.supports(Prim.Gmm, [ints([2, 3], 0, 1, 2), new Tensor(Int32Array.of(0, 0, -129, 0, 0, 0), [1, 3, 2], "int32"), gs], { transposeRhs: false })).toBe(false);
    expect(nb.supports(Prim.Gmm, [ints([2, 3], -128, 128, 1), ints([1, 3, 2], 0, 1, 2), gs], { transposeRhs: false })).toBe(true);
  });

  it("abs-max quantization is bit-identical to the reference (aqt, qwix, 8 and 4 bits, noise, every slice layout)", () => {
    const rng = new Rng(5);
    const x = rng.tensor([4, 6, 33], "float32", 3);
    // a zero slice, and the abs-max element negative
    x.data.fill(0, 0, 33);
    x.data[40] = -9;
    const noise = new Tensor(Float32Array.from(new Rng(6).tensor([4, 6, 33], "float32", 1).data, (v) => Math.max(-0.5, Math.min(0.49, v / 2))), [4, 6, 33], "float32");
    for (const axes of [[2], [1], [0], [0, 1], [1, 2], [0, 1, 2]]) {
      for (const flavour of ["aqt", "qwix"] as const) {
        for (const bits of [8, 4]) {
          for (const ins of [[x], [x, noise]]) {
            const [nat, ref] = both(Prim.Quantize, ins, { bits, axes, flavour });
            const tag = `axes [${axes}] ${flavour} ${bits} bits${ins.length > 1 ? " + noise" : ""}`;
            expect(Array.from(nat[0]!), tag).toEqual(Array.from(ref[0]!));
            expect(Array.from(nat[1]!), tag).toEqual(Array.from(ref[1]!));
          }
        }
      }
    }
    // axes that are not one run stay on the reference kernel
    expect(nativeBackend()!.supports(Prim.Quantize, [x], { bits: 8, axes: [0, 2], flavour: "aqt" })).toBe(false);
  });

  it("the int8 probe measures vpdpbusd where the products use it, and reads 0 on plain loops", () => {
    const vnni = /\bavx512_vnni\b/.test(fs.readFileSync("/proc/cpuinfo", "utf8"));
    expect(b.probeInt8Peak(0.02) > 0).toBe(vnni && info.isa === "avx512");
    b.setIsa("scalar");
    expect(b.probeInt8Peak(0.02)).toBe(0);
    b.setIsa(info.isa!);
  });

  it("a non-finite element is refused with the reference's message", () => {
    const x = new Tensor(Float32Array.of(1, 2, NaN, 4), [2, 2], "float32");
    const nb = nativeBackend()!;
    const p = { bits: 8, axes: [1], flavour: "aqt" as const };
    expect(() => nb.run(Prim.Quantize, [x], p, shapeRules[Prim.Quantize]([x], p))).toThrow(/\[quantize\] element 2 of the input is NaN/);
    // slices down columns (a weight's): the first non-finite element in storage order, whichever chunk of rows finds it
    const w = new Tensor(Float32Array.from({ length: 24 }, (_, i) => (i === 20 ? Infinity : i === 7 ? NaN : i)), [8, 3], "float32");
    const q = { bits: 8, axes: [0], flavour: "qwix" as const };
    expect(() => nb.run(Prim.Quantize, [w], q, shapeRules[Prim.Quantize]([w], q))).toThrow(/\[quantize\] element 7 of the input is NaN/);
  });
});
