// moekit quantize: a checkpoint made here by `moekit init` is quantized (int8, int4), written in the MaxText layout
// with its codes and scales, loaded back without widening and run with `moekit run --checkpoint`; refusals are
// one-line errors with exit code 2, and OUT follows convert's --force / atomic-write rules.
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { SafetensorsCheckpoint, readNpy, writeNpy } from "../../src/io/index.js";
import { moeLayerForward, openMoeLayer, QUANT_META } from "../../src/checkpoint/index.js";
import { normal, prngKey } from "../../src/nn/random.js";
import { dequantize } from "../harness/dequantize.js";
import { snapshot, temporariesIn, useCli, useScratch } from "../hostile/cli-harness.js";

const cli = useCli();
const fresh = useScratch("quantize");
/** A path in a fresh existing folder. */
const scratch = (name: string): string => {
  const p = fresh(name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  return p;
};
const PRESET = ["--preset", "tiny-qwen3-30b-a3b"];

/** ‖a − b‖ / ‖b‖ */
const rmsErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  let e = 0;
  for (let i = 0; i < b.length; i++) {
    m += b[i]! ** 2;
    e += (a[i]! - b[i]!) ** 2;
  }
  return Math.sqrt(e / m);
};

describe("moekit quantize", () => {
  let ckpt: string;
  let input: string;
  let floatOut: Float32Array;
  beforeAll(async () => {
    ckpt = scratch("float.safetensors");
    expect((await cli("init", ...PRESET, ckpt)).code).toBe(0);
    const D = openMoeLayer(ckpt, undefined).config.embDim;
    input = scratch("x.npy");
    writeNpy(input, normal(prngKey(3), [2, 8, D], "float32"));
    const y = scratch("y.npy");
    expect((await cli("run", "--checkpoint", ckpt, "--input", input, "--output", y)).code).toBe(0);
    floatOut = readNpy(y).data as Float32Array;
  });

  it.each([
    ["int8", 1, 0.1],
    ["int4", 0.5, 0.3],
  ] as const)("--mode %s: stored codes and scales, loaded compact, runs as intmp on the float layer", async (mode, perWeight, tol) => {
    const out = scratch(`${mode}.safetensors`);
    const r = await cli("quantize", "--mode", mode, ckpt, out, "--quiet");
    expect(r.code, r.err).toBe(0);
    const [, weights, bytes] = /to \w+: (\d+) expert weights in (\d+) bytes/.exec(r.out)!.map(Number);
    const file = SafetensorsCheckpoint.open(out);
    const names = file.keys();
    const wi0 = names.find((n) => n.endsWith("/wi_0/qvalue"))!;
    expect(file.info(wi0).dtype).toBe(mode === "int8" ? "I8" : "U8");
    expect(file.info(wi0.replace("qvalue", "scale")).dtype).toBe("F32");
    expect(names.some((n) => n.endsWith("/wi_0"))).toBe(false);
    expect(JSON.parse(file.metadata[QUANT_META] as string)).toMatchObject({ format: mode, bits: mode === "int8" ? 8 : 4 });
    file.close();
    const layer = openMoeLayer(out, undefined);
    expect(layer.config.quantization).toBe("intmp");
    // resident: `perWeight` bytes of codes per weight plus one float32 scale per (expert, column) of each k rows
    let held = 0;
    let want = 0;
    for (const w of Object.values(layer.quantized!)) {
      expect(w.codes.data).toBeInstanceOf(mode === "int8" ? Int8Array : Uint8Array);
      const [G, k, n] = w.shape;
      held += w.codes.data.byteLength + w.scales.data.byteLength;
      want += G * k * (mode === "int8" ? n : Math.ceil(n / 2)) + 4 * G * n;
      expect(w.codes.data.byteLength / (G * k * n)).toBeCloseTo(perWeight, 1);
    }
    expect(held).toBe(want);
    expect(bytes).toBe(held);
    expect(weights).toBe(layer.config.numExperts * layer.config.embDim * layer.config.moeMlpDim * 3);
    const y = scratch("yq.npy");
    const run = await cli("run", "--checkpoint", out, "--input", input, "--output", y);
    expect(run.code, run.err).toBe(0);
    expect(run.out).toMatch(new RegExp(`experts held +${mode}, ${held} bytes`));
    const got = readNpy(y).data;
    // the float checkpoint quantized at run time (intmp, weight-only) computes the same (bits on ref; the native
    // backend accumulates intmp's float32 gmm in float32)
    const yr = scratch("yr.npy");
    const quant = ["--set", "quantization=intmp", "--set", `quant_cfg={"__default__":{"w_bits":${mode === "int8" ? 8 : 4}}}`];
    expect((await cli("run", "--checkpoint", ckpt, "--input", input, "--output", yr, ...quant)).code).toBe(0);
    expect(rmsErr(got, readNpy(yr).data)).toBeLessThan(1e-6);
    // the float layer on weights dequantized here (gate per column, experts per (expert, column)) computes it too
    const fl = openMoeLayer(ckpt, undefined, { overrides: { dtype: "float32" } });
    const deq = { ...fl, params: { ...fl.params } };
    for (const p of ["gate/kernel", "wi_0", "wi_1", "wo"]) deq.params[p] = dequantize(fl.params[p]!, mode === "int8" ? 8 : 4);
    expect(rmsErr(got, moeLayerForward(deq, readNpy(input)).output.data)).toBeLessThan(1e-6);
    // so it stays within the quantization error of the float layer (a near-tie in the quantized gate may re-route a token)
    const e = rmsErr(got, floatOut);
    expect(e).toBeLessThan(tol);
    expect(e).toBeGreaterThan(0);
    // the CLI's output is the loaded layer's forward
    const x = readNpy(input);
    expect(Array.from(moeLayerForward(openMoeLayer(out, undefined, { overrides: { dtype: "float32" } }), x).output.data)).toEqual(
      Array.from(got),
    );
  });

  it("codes that serving holds in tiles are read group by group into them: no second copy of a weight while loading", async () => {
    const wide = scratch("wide.safetensors");
    const sizes = ["--set", "emb_dim=128", "--set", "moe_mlp_dim=128", "--set", "num_experts=4"];
    expect((await cli("init", ...PRESET, ...sizes, wide)).code).toBe(0);
    const q4 = scratch("wide-int4.safetensors");
    expect((await cli("quantize", "--mode", "int4", wide, q4, "--quiet")).code).toBe(0);
    const counted = (partial: boolean): { layer: ReturnType<typeof openMoeLayer>; whole: string[]; parts: number } => {
      const src = SafetensorsCheckpoint.open(q4);
      const whole: string[] = [];
      let parts = 0;
      const source = {
        keys: () => src.keys(),
        has: (n: string) => src.has(n),
        info: (n: string) => src.info(n),
        get: (n: string, o?: Parameters<typeof src.get>[1]) => (whole.push(n), src.get(n, o)),
        close: () => src.close(),
        ...(partial ? { readBytes: (n: string, start: number, dst: Uint8Array) => (parts++, src.readBytes(n, start, dst)) } : {}),
        metadata: src.metadata,
      };
      return { layer: openMoeLayer(q4, undefined, { source }), whole, parts };
    };
    const a = counted(true);
    expect(a.whole.filter((n) => n.endsWith("/qvalue"))).toEqual([]);
    expect(a.parts).toBe(3 * 4); // three weights of four experts
    for (const w of Object.values(a.layer.quantized!)) expect(w.codes.shape).toHaveLength(4); // tiles
    // a source that reads whole tensors only: the same tiles, by the row layout's relayout
    const b = counted(false);
    expect(b.whole.filter((n) => n.endsWith("/qvalue"))).toHaveLength(3);
    for (const [p, w] of Object.entries(a.layer.quantized!))
      expect(Array.from(w.codes.data)).toEqual(Array.from(b.layer.quantized![p]!.codes.data));
  });

  it("bad modes and arguments are one-line errors (exit 2)", async () => {
    for (const [args, msg] of [
      [["--mode", "int2", ckpt, scratch("o")], /--mode must be int8 or int4, got "int2"/],
      [[ckpt, scratch("o")], /--mode must be int8 or int4, got undefined/],
      [["--mode", "int8", ckpt], /expects IN and OUT/],
      [["--mode", "fp8", ckpt, scratch("o")], /--mode must be int8 or int4/],
    ] as const) {
      const r = await cli("quantize", ...args);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(msg);
      expect(r.err.trim().split("\n")).toHaveLength(1);
    }
    const q = scratch("q.safetensors");
    expect((await cli("quantize", "--mode", "int4", ckpt, q, "--quiet")).code).toBe(0);
    const again = await cli("quantize", "--mode", "int8", q, scratch("qq.safetensors"), "--quiet");
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/the layer is quantized already/);
    const hf = await cli("convert", "--from", "maxtext", "--to", "hf", "--family", "qwen3_moe", q, scratch("hf"), "--quiet");
    expect(hf.code).toBe(2);
    expect(hf.err).toMatch(/quantized \(served\) layer is written in the MaxText layout only/);
  });

  it("an int8 layer stays int8 (activations quantized per token at run time); --mode int4 is refused for it", async () => {
    const i8 = scratch("int8-layer.safetensors");
    expect((await cli("init", ...PRESET, "--set", "quantization=int8", i8)).code).toBe(0);
    const out = scratch("int8-served.safetensors");
    expect((await cli("quantize", "--mode", "int8", i8, out, "--quiet")).code).toBe(0);
    const served = openMoeLayer(out, undefined, { overrides: { dtype: "float32" } });
    expect(served.config.quantization).toBe("int8");
    const x = readNpy(input);
    const float = openMoeLayer(i8, undefined, { overrides: { dtype: "float32" } });
    // the served layer's forward is the int8 layer's, up to the sparse gmm's weight-scale rule (per expert here)
    expect(rmsErr(moeLayerForward(served, x).output.data, moeLayerForward(float, x).output.data)).toBeLessThan(0.05);
    const r = await cli("quantize", "--mode", "int4", i8, scratch("no.safetensors"), "--quiet");
    expect(r.code).toBe(2);
    expect(r.err.trim()).toMatch(
      /^moekit quantize: \[quantizeMoeLayer\] an int8 layer quantizes its weights to 8 bits: mode int4 needs a float or intmp layer$/,
    );
  });

  it("an existing OUT needs --force; OUT never replaces IN; no temporaries are left", async () => {
    const out = scratch("exists.safetensors");
    fs.writeFileSync(out, "keep me");
    const before = snapshot(path.dirname(out));
    const r = await cli("quantize", "--mode", "int8", ckpt, out, "--quiet");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/already exists; pass --force/);
    expect(snapshot(path.dirname(out))).toEqual(before);
    expect((await cli("quantize", "--mode", "int8", ckpt, out, "--quiet", "--force")).code).toBe(0);
    expect(openMoeLayer(out, undefined).quantized).toBeDefined();
    expect(temporariesIn(path.dirname(out))).toEqual([]);
    const self = await cli("quantize", "--mode", "int8", ckpt, ckpt, "--force", "--quiet");
    expect(self.code).toBe(2);
    expect(self.err).toMatch(/OUT .* is IN/);
  });
});
