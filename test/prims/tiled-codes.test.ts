// int8 / int4 codes in tiles (prims/quantized-gmm.ts): the converters against the element offsets the kernels read,
// the tiles' zero padding, QuantizedGmm and the served expert FFN on tiles giving the same bits as on rows (reference
// and native backends), the serving layout's rule, and checkpoints holding rows while the loaded layer holds tiles.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { nativeBackend, nativeInfo } from "../../src/backends/native/index.js";
import { refBackend } from "../../src/backends/ref/index.js";
import { moeLayerForward, openMoeLayer } from "../../src/checkpoint/index.js";
import { main } from "../../src/cli/main.js";
import { Tensor } from "../../src/core/tensor.js";
import { SafetensorsCheckpoint } from "../../src/io/index.js";
import { normal, prngKey } from "../../src/nn/random.js";
import { rowsWeight, servingWeights, tiledWeight, type QuantizedWeight } from "../../src/ops/quantized-weight.js";
import { Prim } from "../../src/prims/prims.js";
import { intCodeOffset } from "../../src/backends/ref/kernels/quantized-gmm.js";
import { tiledCodes, weightLayout, type QuantizedGmmParams } from "../../src/prims/quantized-gmm.js";
import { shapeRules } from "../../src/prims/shape-rules.js";
import { captureConsole } from "../harness/console.js";
import { randomStorage } from "../harness/quantized-storage.js";
import { Rng } from "../harness/random.js";

captureConsole();

const bitsEqual = (a: ArrayLike<number>, b: ArrayLike<number>): boolean => {
  if (a.length !== b.length) return false;
  const [x, y] = [new Float32Array(Array.from(a)), new Float32Array(Array.from(b))];
  const [u, v] = [new Uint32Array(x.buffer), new Uint32Array(y.buffer)];
  return u.every((w, i) => w === v[i]);
};

const stored = (format: "int8" | "int4", G: number, k: number, n: number, seed: number): QuantizedWeight => {
  const [codes, scales] = randomStorage(format, G, k, n, seed);
  return { format, shape: [G, k, n], codes, scales };
};

// k across a tile and a part of one, n a partial 64- or 128-column tile (odd for int4), one column, rows of words
const SHAPES: [number, number, number][] = [
  [2, 40, 70],
  [3, 33, 129],
  [1, 64, 1],
  [2, 100, 200], // two tiles of k, rows of whole 4-byte words (int8 200 bytes, int4 100): the converters' word copies
];

describe("int8 / int4 codes in tiles", () => {
  for (const format of ["int8", "int4"] as const)
    it(`${format}: tiledWeight and rowsWeight move every code to the offset the kernels read it at, tiles zero-padded`, () => {
      SHAPES.forEach(([G, k, n], i) => {
        const w = stored(format, G, k, n, i + 1);
        const t = tiledWeight(w);
        expect(t.codes.shape).toEqual(weightLayout(format, G, k, n, true).codes.shape);
        expect(tiledCodes(t.codes)).toBe(true);
        const [rows, tiles] = [
          new Uint8Array(w.codes.data.buffer, w.codes.data.byteOffset, w.codes.data.byteLength),
          new Uint8Array(t.codes.data.buffer, t.codes.data.byteOffset, t.codes.data.byteLength),
        ];
        const seen = new Uint8Array(tiles.length);
        for (let g = 0; g < G; g++)
          for (let p = 0; p < k; p++)
            for (let j = 0; j < n; j++) {
              const [a, b] = [intCodeOffset(format, false, k, n, g, p, j), intCodeOffset(format, true, k, n, g, p, j)];
              const code = (bytes: Uint8Array, o: number): number => (format === "int8" ? bytes[o]! : (bytes[o]! >> ((j & 1) * 4)) & 15);
              if (code(rows, a) !== code(tiles, b)) throw new Error(`${format} [${G},${k},${n}] code (${g},${p},${j}) moved wrong`);
              seen[b] = 1;
            }
        // every byte no code lives in is padding, and zero
        expect(tiles.every((v, o) => seen[o] === 1 || v === 0)).toBe(true);
        expect(bitsEqual(rowsWeight(t).codes.data, w.codes.data)).toBe(true);
        expect(rowsWeight(w)).toBe(w);
        expect(tiledWeight(t)).toBe(t);
      });
    });

  it("servingWeights tiles a layer's weights where each one's padding adds at most 1/32 to its codes, else none", () => {
    const tiled = (ws: QuantizedWeight[]): boolean[] => servingWeights(ws).map((w) => tiledCodes(w.codes));
    // D = 64, H = 128 (int8): every weight tiles exactly
    expect(tiled([stored("int8", 2, 64, 128, 1), stored("int8", 2, 128, 64, 2)])).toEqual([true, true]);
    // int4 at D = 128, H = 2880: 2.2% padding (GPT-OSS's width)
    expect(tiled([stored("int4", 1, 128, 2880, 1), stored("int4", 1, 2880, 128, 2)])).toEqual([true, true]);
    // D = 64, H = 96: wi [64, 96] would grow by a third, so wo [96, 64], which tiles exactly, stays in rows too
    expect(tiled([stored("int8", 2, 64, 96, 1), stored("int8", 2, 96, 64, 2)])).toEqual([false, false]);
    // a tiled weight among them goes back to rows
    const back = servingWeights([tiledWeight(stored("int8", 2, 96, 64, 3)), stored("int8", 2, 64, 96, 4)]);
    expect(back.map((w) => tiledCodes(w.codes))).toEqual([false, false]);
    const [c, s] = randomStorage("fp8_e4m3", 1, 128, 128, 3);
    const fp8: QuantizedWeight = { format: "fp8_e4m3", shape: [1, 128, 128], codes: c, scales: s };
    expect(servingWeights([fp8])[0]).toBe(fp8);
    expect(tiledWeight(fp8)).toBe(fp8);
  });

  it("the shape rule takes tiles of int8 / int4 only, with the tiled layout's shape", () => {
    const lhs = new Tensor(new Float32Array(2 * 40), [2, 40], "float32");
    const gs = new Tensor(Int32Array.from([2, 0]), [2], "int32");
    const t = tiledWeight(stored("int8", 2, 40, 70, 5));
    const rule = (codes: Tensor, format: "int8" | "int4" | "fp8_e4m3"): unknown =>
      shapeRules[Prim.QuantizedGmm]([lhs, codes, t.scales, gs], { format, columns: 70 });
    expect(rule(t.codes, "int8")).toEqual([{ shape: [2, 70], dtype: "float32" }]);
    expect(() => rule(t.codes, "int4")).toThrow(/int4 codes .*expected uint8/);
    expect(() => rule(t.codes, "fp8_e4m3")).toThrow(/fp8_e4m3 codes int8\[2,1,2,4096\]: expected uint8\[2,70,40\]/);
    const short = new Tensor(t.codes.data.subarray(0, 4096), [1, 1, 1, 4096], "int8");
    expect(() => rule(short, "int8")).toThrow(/expected int8\[2,1,2,4096\]/);
  });

  const backends = [["ref", refBackend] as const, ...(nativeInfo().available ? [["native", nativeBackend()!] as const] : [])];
  for (const [name, be] of backends)
    for (const format of ["int8", "int4"] as const)
      for (const intLhs of [false, true])
        it(`${name}: QuantizedGmm on tiles gives the bits of rows (${format}, ${intLhs ? "int8-range lhs" : "float lhs"})`, () => {
          SHAPES.forEach(([G, k, n], i) => {
            const rng = new Rng(40 + i);
            const w = stored(format, G, k, n, 10 + i);
            const sizes = Array.from({ length: G }, (_, g) => (g === 1 ? 0 : 3 + g));
            const m = sizes.reduce((a, v) => a + v, 0) + 1; // a row past the groups
            const gs = new Tensor(Int32Array.from(sizes), [G], "int32");
            const lhs = intLhs ? new Tensor(Int32Array.from(rng.randint([m * k], -128, 128).data), [m, k], "int32") : rng.tensor([m, k]);
            const ls = intLhs ? [new Tensor(Float32Array.from(rng.uniform([m], 0.001, 0.01).data), [m, 1], "float32")] : [];
            const p: QuantizedGmmParams = { format, columns: n };
            const run = (codes: Tensor): ArrayLike<number> => {
              const ins = [lhs, codes, w.scales, gs, ...ls];
              return be.run(Prim.QuantizedGmm, ins, p, shapeRules[Prim.QuantizedGmm](ins, p))[0]!;
            };
            expect(bitsEqual(run(tiledWeight(w).codes), run(w.codes)), `[${G},${k},${n}]`).toBe(true);
          });
        });
});

describe("served layers in tiles", () => {
  const root = mkdtempSync(join(tmpdir(), "moekit-tiles-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  for (const mode of ["int8", "int4"] as const)
    it(`${mode}: the checkpoint holds rows, the layer read back holds tiles and computes what rows compute`, async () => {
      const float = join(root, `float-${mode}.safetensors`);
      const set = (kv: string): string[] => ["--set", kv];
      const init = ["init", "--preset", "tiny-qwen3-30b-a3b", ...set("emb_dim=128"), ...set("moe_mlp_dim=256"), ...set("num_experts=4")];
      expect(await main([...init, float])).toBe(0);
      const out = join(root, `${mode}.safetensors`);
      expect(await main(["quantize", "--mode", mode, float, out, "--quiet"])).toBe(0);
      const file = SafetensorsCheckpoint.open(out);
      const codes = file.keys().filter((n) => n.endsWith("/qvalue"));
      expect(codes.length).toBe(3);
      for (const n of codes) expect(file.info(n).shape.length).toBe(3);
      file.close();
      const layer = openMoeLayer(out, undefined, { overrides: { dtype: "float32" } });
      const held = Object.values(layer.quantized!);
      for (const w of held) expect(tiledCodes(w.codes)).toBe(true);
      const rows = { ...layer, quantized: Object.fromEntries(Object.entries(layer.quantized!).map(([k, w]) => [k, rowsWeight(w)])) };
      const x = normal(prngKey(3), [1, 5, 128], "float32");
      expect(bitsEqual(moeLayerForward(layer, x).output.data, moeLayerForward(rows, x).output.data)).toBe(true);
    });
});
