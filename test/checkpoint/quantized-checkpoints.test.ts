// Quantized checkpoints as shipped, read in their compact form: DeepSeek-V3's FP8 (e4m3 weights with 128×128
// weight_scale_inv tiles) and GPT-OSS's MXFP4 (e2m1 blocks of 32 with e8m0 scales). Each checkpoint is made here
// from a float fixture by an encoder written here; the layer read by moekit must equal the Hugging Face reference
// loop (test/reference) run on the weights dequantized here, and keep its routed experts as byte codes.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Tensor } from "../../src/core/tensor.js";
import { moeLayerForward, readHfMoeLayer, readMaxTextMoeLayer, writeMaxTextMoeLayer } from "../../src/checkpoint/index.js";
import type { StorageDType } from "../../src/io/index.js";
import type { HfTensor } from "../reference/hf-common.js";
import { main } from "../../src/cli/main.js";
import { captureConsole } from "../harness/console.js";
import { makeFixture, makeInput, relError, writeFixture, type Fixture } from "./fixtures.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "moekit-quant-ckpt-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const F64 = { overrides: { dtype: "float64", weight_dtype: "float64" } };
const { out, err } = captureConsole();

/** float8_e4m3fn bits -> value (no infinities; S.1111.111 is NaN). */
function e4m3(b: number): number {
  const e = (b >> 3) & 15;
  const m = b & 7;
  if (e === 15 && m === 7) return NaN;
  const v = e === 0 ? (m / 8) * 2 ** -6 : (1 + m / 8) * 2 ** (e - 7);
  return b & 128 ? -v : v;
}
const E4M3 = Array.from({ length: 256 }, (_, b) => e4m3(b));

/** The nearest e4m3 code (ties to an even mantissa), by search over every code. */
function toE4m3(v: number): number {
  let best = 0;
  for (let b = 0; b < 256; b++) {
    const d = Math.abs(E4M3[b]! - v);
    const bd = Math.abs(E4M3[best]! - v);
    if (d < bd || (d === bd && (b & 1) === 0 && (best & 1) === 1)) best = b;
  }
  return best;
}

const FP4 = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];
const toFp4 = (v: number): number => FP4.reduce((best, x, c) => (Math.abs(x - v) < Math.abs(FP4[best]! - v) ? c : best), 0);

/** [rows, cols] float (row-major) -> e4m3 codes and float32 scales per 128×128 tile (amax / 448); `w` is overwritten with its dequantized values. */
function encodeFp8(w: Float64Array, rows: number, cols: number): { codes: Uint8Array; scales: Float32Array } {
  const [rt, ct] = [Math.ceil(rows / 128), Math.ceil(cols / 128)];
  const scales = new Float32Array(rt * ct);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) {
      const t = Math.floor(i / 128) * ct + Math.floor(j / 128);
      scales[t] = Math.max(scales[t]!, Math.abs(w[i * cols + j]!) / 448);
    }
  const codes = new Uint8Array(rows * cols);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) {
      const s = scales[Math.floor(i / 128) * ct + Math.floor(j / 128)]!;
      codes[i * cols + j] = toE4m3(w[i * cols + j]! / s);
      w[i * cols + j] = E4M3[codes[i * cols + j]!]! * s;
    }
  return { codes, scales };
}

/** [E, rows, cols] float -> MXFP4 blocks [E, rows, cols/32, 16] and e8m0 scales [E, rows, cols/32]; `w` is overwritten with its dequantized values. */
function encodeMxfp4(w: Float64Array, E: number, rows: number, cols: number): { blocks: Uint8Array; scales: Uint8Array } {
  const nb = cols / 32;
  const blocks = new Uint8Array((E * rows * cols) / 2);
  const scales = new Uint8Array(E * rows * nb);
  for (let r = 0; r < E * rows; r++)
    for (let b = 0; b < nb; b++) {
      let amax = 0;
      for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(w[r * cols + b * 32 + i]!));
      const exp = amax === 0 ? 0 : Math.ceil(Math.log2(amax / 6));
      scales[r * nb + b] = exp + 127;
      for (let i = 0; i < 32; i++) {
        const at = r * cols + b * 32 + i;
        const code = toFp4(w[at]! / 2 ** exp);
        blocks[(at - (at % 2)) / 2]! |= i % 2 === 0 ? code : code << 4;
        w[at] = FP4[code]! * 2 ** exp;
      }
    }
  return { blocks, scales };
}

/** [E, a, b] -> [E, b, a] of a fixture tensor's values. */
function swapLast2(t: HfTensor): Float64Array {
  const [E, a, b] = t.shape as [number, number, number];
  const out = new Float64Array(t.data.length);
  for (let e = 0; e < E; e++)
    for (let i = 0; i < a; i++) for (let j = 0; j < b; j++) out[(e * b + j) * a + i] = t.data[(e * a + i) * b + j]!;
  return out;
}

function checkAgainstReference(fx: Fixture, dir: string, format: string, held: string[]): void {
  const layer = readHfMoeLayer(dir, fx.layer, F64);
  const q = Object.values(layer.quantized!);
  expect(Object.keys(layer.quantized!).sort()).toEqual(held.sort());
  expect(q.every((w) => w.format === format)).toBe(true);
  for (const w of q) {
    expect(w.codes.data).toBeInstanceOf(Uint8Array);
    // held compact: 1 byte (fp8) or half a byte (mxfp4) per expert weight
    expect(w.codes.data.byteLength / (w.shape[0] * w.shape[1] * w.shape[2])).toBe(format === "mxfp4" ? 0.5 : 1);
  }
  const { rows, x } = makeInput(2, 5, fx.config.hidden_size as number);
  // fx.reference reads fx.tensors, which now hold the dequantized weights
  const y = moeLayerForward(layer, x).output;
  expect(relError(y.data, fx.reference(rows))).toBeLessThan(1e-10);
  // the MaxText layout keeps the compact form: written and read back, the same outputs
  const mt = path.join(root, `${format}.safetensors`);
  writeMaxTextMoeLayer(layer, mt);
  const back = readMaxTextMoeLayer(mt, F64);
  expect(Object.keys(back.quantized!).sort()).toEqual(held.sort());
  expect(Array.from(moeLayerForward(back, x).output.data)).toEqual(Array.from(y.data));
}

describe("quantized checkpoints as shipped", () => {
  it("DeepSeek-V3 FP8: routed and shared experts kept as e4m3 codes with 128×128 scales; = the float loop", async () => {
    const fx = makeFixture("deepseek_v3", { dims: { D: 144, H: 136 } });
    const P = `${fx.layerPrefix}.mlp`;
    const fp8: Record<string, { codes: Uint8Array; scales: Float32Array; shape: number[] }> = {};
    for (const name of Object.keys(fx.tensors).filter((n) => n.startsWith(`${P}.experts.`) || n.startsWith(`${P}.shared_experts.`))) {
      const t = fx.tensors[name]!;
      const data = Float64Array.from(t.data);
      fp8[name] = { ...encodeFp8(data, t.shape[0]!, t.shape[1]!), shape: t.shape };
      fx.tensors[name] = { shape: t.shape, data };
    }
    const config = {
      ...fx.config,
      quantization_config: { activation_scheme: "dynamic", fmt: "e4m3", quant_method: "fp8", weight_block_size: [128, 128] },
    };
    const storeFp8 = (tensors: Record<string, Tensor>, storage: Record<string, StorageDType>): void => {
      for (const [name, f] of Object.entries(fp8)) {
        tensors[name] = new Tensor(f.codes, f.shape, "uint8");
        storage[name] = "F8_E4M3";
        tensors[`${name}_scale_inv`] = new Tensor(f.scales, [Math.ceil(f.shape[0]! / 128), Math.ceil(f.shape[1]! / 128)], "float32");
        storage[`${name}_scale_inv`] = "F32";
      }
    };
    const dir = writeFixture(fx, path.join(root, "dsv3-fp8"), {
      config,
      edit: storeFp8,
    });
    const kernels = ["wi_0", "wi_1", "wo"];
    checkAgainstReference(fx, dir, "fp8_e4m3", [
      ...kernels.map((k) => `MoeBlock_0/${k}`),
      ...kernels.map((k) => `shared_experts/${k}/kernel`),
    ]);
    expect(readHfMoeLayer(dir, fx.layer).caveats.join(" ")).toMatch(/FP8 weights run weight-only/);
    // and the CLI runs it
    expect(await main(["run", "--checkpoint", dir, "--layer", String(fx.layer)])).toBe(0);
    expect(out.join("\n")).toMatch(/experts held +fp8_e4m3, \d+ bytes \(1\.\d+ per weight/);
    // a NaN code (S.1111.111) in a routed expert is named by the weight before the forward, not found in the output
    const expert = Object.keys(fp8).find((n) => n.includes(".experts."))!;
    fp8[expert]!.codes[3] = 0x7f;
    const bad = writeFixture(fx, path.join(root, "dsv3-fp8-nan"), {
      config,
      edit: storeFp8,
    });
    expect(await main(["run", "--checkpoint", bad, "--layer", String(fx.layer)])).not.toBe(0);
    expect(err.join("\n")).toMatch(/MoeBlock_0\/wi_\d\/codes\] uint8\[[\d,]+\] holds the NaN code 0x7f/);
  });

  it("GPT-OSS MXFP4: experts kept as e2m1 blocks with e8m0 scales, gate/up de-interleaved by rows; = the float loop", () => {
    const fx = makeFixture("gpt_oss", { dims: { D: 64, H: 32 } });
    const P = `${fx.layerPrefix}.mlp.experts`;
    const mx: Record<string, { blocks: Uint8Array; scales: Uint8Array; shape: number[] }> = {};
    for (const base of ["gate_up_proj", "down_proj"]) {
      const t = fx.tensors[`${P}.${base}`]!;
      const [E, inn, out] = t.shape as [number, number, number];
      // stored as [E, rows = out, cols = in]
      const w = swapLast2(t);
      mx[base] = { ...encodeMxfp4(w, E, out, inn), shape: [E, out, inn] };
      fx.tensors[`${P}.${base}`] = { shape: t.shape, data: swapLast2({ shape: [E, out, inn], data: w }) };
    }
    const config = { ...fx.config, quantization_config: { quant_method: "mxfp4", modules_to_not_convert: ["model.layers.*.mlp.router"] } };
    const dir = writeFixture(fx, path.join(root, "gptoss-mxfp4"), {
      config,
      edit: (tensors, storage) => {
        for (const [base, f] of Object.entries(mx)) {
          const [E, rows, cols] = f.shape as [number, number, number];
          delete tensors[`${P}.${base}`];
          tensors[`${P}.${base}_blocks`] = new Tensor(f.blocks, [E, rows, cols / 32, 16], "uint8");
          tensors[`${P}.${base}_scales`] = new Tensor(f.scales, [E, rows, cols / 32], "uint8");
          storage[`${P}.${base}_blocks`] = "U8";
          storage[`${P}.${base}_scales`] = "U8";
        }
      },
    });
    checkAgainstReference(fx, dir, "mxfp4", ["wi_0", "wi_1", "wo"]);
  });

  it("other quantization configs stay refused", () => {
    const fx = makeFixture("deepseek_v3");
    const dir = writeFixture(fx, path.join(root, "dsv3-bad"), {
      config: { ...fx.config, quantization_config: { quant_method: "fp8", fmt: "e4m3", weight_block_size: [64, 64] } },
    });
    expect(() => readHfMoeLayer(dir, fx.layer)).toThrow(/quant_method=fp8, fmt="e4m3", weight_block_size=\[64,64\]/);
    const e5m2 = writeFixture(fx, path.join(root, "dsv3-e5m2"), {
      config: { ...fx.config, quantization_config: { quant_method: "fp8", fmt: "e5m2", weight_block_size: [128, 128] } },
    });
    expect(() => readHfMoeLayer(e5m2, fx.layer)).toThrow(/fmt="e5m2"/);
    const fp8 = { quant_method: "fp8", fmt: "e4m3", weight_block_size: [128, 128] };
    const staticScales = writeFixture(fx, path.join(root, "dsv3-static"), {
      config: { ...fx.config, quantization_config: { ...fp8, activation_scheme: "static" } },
    });
    expect(() => readHfMoeLayer(staticScales, fx.layer)).toThrow(/activation_scheme="static": .*dynamic activation scaling only/);
  });
});
