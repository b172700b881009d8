// The native QuantizedGmm (moe_quantized_gmm) against the reference kernel, for every storage format and both lhs
// kinds, on the default ISA and on isa scalar. int8 / int4 codes with an int8-range int32 lhs (int8 serve mode)
// multiply exactly in int32 and equal the reference bit for bit; float products (weight-only, and the fp8 / mxfp4
// formats) are fp32 chains per scale block, judged as the other native matmuls are: against the reference in float64
// under the tolerance policy (c·eps·sqrt(k)·rms atol, NMSE). 1 and 2 threads give the same bits.
import { afterAll, describe, expect, it } from "vitest";
import { nativeBinding } from "../../src/backends/native/binding.js";
import { nativeBackend, nativeInfo, setNativeThreads } from "../../src/backends/native/index.js";
import { refBackend } from "../../src/backends/ref/index.js";
import { Tensor } from "../../src/core/tensor.js";
import { Prim } from "../../src/prims/prims.js";
import { WEIGHT_FORMATS, type QuantizedGmmParams } from "../../src/prims/quantized-gmm.js";
import { shapeRules } from "../../src/prims/shape-rules.js";
import { expectConforms } from "../harness/conformance.js";
import { randomStorage } from "../harness/quantized-storage.js";
import { Rng } from "../harness/random.js";

const info = nativeInfo();

const weights = randomStorage;

interface Case {
  m: number;
  k: number;
  n: number;
  gs: number[];
}

// k not a multiple of the 128 (fp8) block or of 4, n odd (int4) and across the 64-column panels and 128-column fp8
// scale blocks, empty groups, rows past the groups, a group over two 128-row items
const CASES: Case[] = [
  { m: 9, k: 7, n: 70, gs: [3, 0, 5] },
  { m: 20, k: 300, n: 129, gs: [13, 6] },
  { m: 140, k: 96, n: 65, gs: [0, 135, 5] },
  { m: 4, k: 64, n: 1, gs: [2] },
];

describe.skipIf(!info.available)(`native QuantizedGmm${info.available ? "" : ` (skipped: ${info.reason})`}`, () => {
  const b = nativeBinding()!;
  const nb = nativeBackend()!;
  afterAll(() => {
    b.setIsa(info.isa!);
    setNativeThreads(0);
  });
  const isas = info.isa === "scalar" ? ["scalar"] : [info.isa!, "scalar"];

  for (const isa of isas)
    for (const format of WEIGHT_FORMATS)
      for (const intLhs of [false, true])
        it(`${format}, ${intLhs ? "int8-range int32 lhs with row scales" : "float32 lhs"} (isa ${isa}): ${intLhs && (format === "int8" || format === "int4") ? "bit-identical to" : "conforms to"} the reference, same bits on 1 and 2 threads`, () => {
          b.setIsa(isa as "scalar");
          CASES.forEach((c0, ci) => {
            const c = { ...c0, k: format === "mxfp4" ? Math.ceil(c0.k / 32) * 32 : c0.k };
            const rng = new Rng(100 + ci);
            const [codes, scales] = weights(format, c.gs.length, c.k, c.n, ci + 7);
            const gs = new Tensor(Int32Array.from(c.gs), [c.gs.length], "int32");
            const lhs = intLhs ? new Tensor(Int32Array.from(rng.randint([c.m * c.k], -128, 128).data), [c.m, c.k], "int32") : rng.tensor([c.m, c.k]);
            const ls = intLhs ? [new Tensor(Float32Array.from(rng.uniform([c.m], 0.001, 0.01).data), [c.m, 1], "float32")] : [];
            const ins = [lhs, codes, scales, gs, ...ls];
            const params: QuantizedGmmParams = { format, columns: c.n };
            expect(nb.supports(Prim.QuantizedGmm, ins, params)).toBe(true);
            const aval = shapeRules[Prim.QuantizedGmm](ins, params);
            const run = (threads: number): Tensor => {
              setNativeThreads(threads);
              return new Tensor(nb.run(Prim.QuantizedGmm, ins, params, aval)[0]!, aval[0]!.shape, "float32");
            };
            const [one, two] = [run(1), run(2)];
            expect(new Uint32Array(two.data.buffer)).toEqual(new Uint32Array(one.data.buffer));
            const what = `${format} m=${c.m} k=${c.k} n=${c.n}`;
            if (intLhs && (format === "int8" || format === "int4")) {
              const want = refBackend.run(Prim.QuantizedGmm, ins, params, aval)[0]!;
              expect(Array.from(one.data), what).toEqual(Array.from(want));
            } else {
              // the reference with a float64 lhs: every partial sum unrounded
              const wide = [intLhs ? lhs : new Tensor(Float64Array.from(lhs.data), lhs.shape, "float64"), ...ins.slice(1)];
              const wAval = shapeRules[Prim.QuantizedGmm](wide, params);
              const want = new Tensor(refBackend.run(Prim.QuantizedGmm, wide, params, wAval)[0]!, wAval[0]!.shape, wAval[0]!.dtype);
              expectConforms(one, want, { k: c.k, nmse: true }, what);
            }
            const past = one.data.subarray(c.gs.reduce((a, x) => a + x, 0) * c.n);
            expect(past.every((v) => Object.is(v, 0))).toBe(true);
          });
        });

  it("stays on the reference for operands it does not take: a bfloat16 lhs, an int32 lhs outside int8 range", () => {
    const [codes, scales] = weights("int8", 1, 4, 3, 1);
    const gs = new Tensor(Int32Array.of(2), [1], "int32");
    const p: QuantizedGmmParams = { format: "int8", columns: 3 };
    const bf = new Tensor(new Float32Array(8), [2, 4], "bfloat16");
    expect(nb.supports(Prim.QuantizedGmm, [bf, codes, scales, gs], p)).toBe(false);
    const wide = new Tensor(Int32Array.of(0, 1, 2, 3, 4, 5, 6, 200), [2, 4], "int32");
    const ls = new Tensor(Float32Array.of(1, 1), [2, 1], "float32");
    expect(nb.supports(Prim.QuantizedGmm, [wide, codes, scales, gs, ls], p)).toBe(false);
    expect(nb.supports(Prim.QuantizedGmm, [new Tensor(new Float32Array(8), [2, 4], "float32"), codes, scales, gs], p)).toBe(true);
  });
});
