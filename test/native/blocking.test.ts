// The GEMM engine's block sizes: read from the cache model, set per multiply kind (what a tune file does) and checked,
// and without effect on results: the forward and every gradient of a layer are the same bits under the model's
// blocking, the smallest blocks the engine accepts and blocks larger than the problem, for float32 and (where the CPU
// has a bf16 kind) bfloat16 weights. Then tune files: parsed with errors that name the key, applied only to the CPU
// and ISA they were measured on, and `moekit tune` on a small shape writing one that start-up applies.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { nativeBinding } from "../../src/backends/native/binding.js";
import { nativeInfo } from "../../src/backends/native/index.js";
import { applyTuneFile, parseTuneFile, tuneState } from "../../src/backends/native/tune-file.js";
import { useBackend } from "../../src/backends/select.js";
import type { Tensor } from "../../src/core/tensor.js";
import { moeConfig } from "../../src/moe/config.js";
import { routedMoeForward, type RoutedMoeWeights } from "../../src/moe/routed-moe.js";
import { sum } from "../../src/ops/reduce.js";
import { mul } from "../../src/ops/elementwise.js";
import { tuneCommand } from "../../src/cli/commands/tune.js";
import { randomInput, randomWeights } from "../moe/setup.js";

const info = nativeInfo();
const b = nativeBinding();
const kinds = (): string[] => (b === undefined ? [] : b.isa() !== "avx512" ? ["f32"] : b.bf16Path() === "widen" ? ["f32"] : ["f32", b.bf16Path() === "amx" ? "amx" : "dpbf16"]);

function bits(t: Tensor): Uint32Array {
  const d = t.data as Float32Array;
  return new Uint32Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
}

describe.skipIf(!info.available)(`GEMM blocking${info.available ? "" : ` (skipped: ${info.reason})`}`, () => {
  afterEach(() => {
    applyTuneFile(b!, "off");
  });

  it("reads the model's blocking, sets one kind and puts the model's back", () => {
    for (const kind of kinds()) {
      const model = b!.getBlocking(kind);
      expect(model.set).toBe(false);
      expect(model.kc % 32).toBe(0);
      expect(model.mc % model.mr).toBe(0);
      expect(model.nc % model.nr).toBe(0);
      b!.setBlocking(kind, 64, model.mr * 3, model.nr * 5);
      expect(b!.getBlocking(kind)).toEqual({ ...model, kc: 64, mc: model.mr * 3, nc: model.nr * 5, set: true });
      expect(b!.blockingInfo()).toMatch(/kc 64 .*\(set\)/);
      b!.setBlocking(kind, 0, 0, 0);
      expect(b!.getBlocking(kind)).toEqual(model);
    }
  });

  it.skipIf(b?.isa() !== "avx512")("names the streaming kernel's prefetch level and block rows, from the caches it prints", () => {
    const text = b!.blockingInfo();
    const intoL1 = Number(/^l1d (\d+) KiB/.exec(text)![1]) >= 48;
    expect(text).toContain(`prefetching the next rows into the ${intoL1 ? "l1" : "l2"}, in blocks of 16 weight rows (32 above 16 rows`);
    // 5-16 rows: up to 64 (the most, before halving for rows too far apart to fit two blocks in the l2) where the band
    // goes to the l2; 16 where it goes to the l1
    expect(text.includes("up to 64 for 5-16 rows")).toBe(!intoL1);
  });

  it("refuses block sizes the engine cannot use, naming them", () => {
    const f32 = b!.getBlocking("f32");
    expect(() => b!.setBlocking("f32", 48, 0, 0)).toThrow(/kc = 48 must be 0 .* a multiple of 32/);
    expect(() => b!.setBlocking("f32", 0, f32.mr + 1, 0)).toThrow(new RegExp(`mc = ${f32.mr + 1} must be 0 .* a multiple of mr = ${f32.mr}`));
    expect(() => b!.setBlocking("f32", 0, 0, f32.nr - 1)).toThrow(/nc = .* a multiple of nr/);
    expect(() => b!.setBlocking("fp8", 0, 0, 0)).toThrow(/unknown multiply kind 'fp8'/);
    expect(b!.getBlocking("f32")).toEqual(f32);
  });

  it("gives the same bits whatever the blocking: forward and every gradient", () => {
    useBackend("native");
    for (const kind of kinds()) {
      const dtype = kind === "f32" ? "float32" : "bfloat16";
      // groups of about 96 rows: the packed path, several kc blocks (D, H > 64), items split along rows and columns
      const cfg = moeConfig({ num_experts: 4, num_experts_per_tok: 2, emb_dim: 160, moe_mlp_dim: 200, mlp_dim: 200, dtype, weight_dtype: dtype });
      const d = { B: 2, S: 96, D: 160, H: 200 };
      const w = randomWeights(cfg, d, 3);
      const x = randomInput(cfg, d, 4);
      const ct = randomInput(cfg, d, 5);
      const loss = (xx: Tensor, wi0: Tensor, wi1: Tensor, wo: Tensor): Tensor =>
        sum(mul(routedMoeForward(cfg, { ...w, wi0, wi1, wo } as RoutedMoeWeights, xx).output, ct));
      const run = (): Uint32Array[] => {
        const y = routedMoeForward(cfg, w, x).output;
        const g = valueAndGrad(loss)(x, w.wi0, w.wi1, w.wo);
        return [bits(y), ...g.grads.map(bits)];
      };
      const model = b!.getBlocking(kind);
      const want = run();
      for (const [kc, mc, nc] of [
        [32, model.mr, model.nr],
        [96, model.mr * 2, model.nr * 3],
        [4096, model.mr * 500, model.nr * 200],
      ] as const) {
        b!.setBlocking(kind, kc, mc, nc);
        const got = run();
        got.forEach((g, i) => expect(g, `${kind} kc ${kc} mc ${mc} nc ${nc}: output ${i}`).toEqual(want[i]));
      }
    }
    useBackend("ref");
  });

  it("parses tune files, naming the bad key", () => {
    const ok = { moekitTune: 1, cpu: "X", isa: "avx512", blocking: { f32: { kc: 256, mc: 528, nc: 1024 } } };
    expect(parseTuneFile(JSON.stringify(ok), "t.json").blocking.f32).toEqual({ kc: 256, mc: 528, nc: 1024 });
    expect(() => parseTuneFile("{", "t.json")).toThrow(/t.json: not JSON/);
    expect(() => parseTuneFile(JSON.stringify({ ...ok, moekitTune: 2 }), "t.json")).toThrow(/key "moekitTune" must be 1/);
    expect(() => parseTuneFile(JSON.stringify({ ...ok, blocking: { f32: { kc: 256, mc: -1, nc: 8 } } }), "t.json")).toThrow(/"blocking.f32.mc" must be a positive integer/);
    expect(() => parseTuneFile(JSON.stringify({ ...ok, blocking: { fp8: { kc: 1, mc: 1, nc: 1 } } }), "t.json")).toThrow(/"blocking.fp8" is not a multiply kind/);
  });

  it("applies a tune file only to the CPU and ISA it was measured on", () => {
    const dir = mkdtempSync(join(tmpdir(), "moekit-tune-"));
    const f32 = b!.getBlocking("f32");
    const file = (cpu: string, kc: number): string => {
      const p = join(dir, `${cpu.length}-${kc}.json`);
      writeFileSync(p, JSON.stringify({ moekitTune: 1, cpu, isa: b!.isa(), blocking: { f32: { kc, mc: f32.mr * 4, nc: f32.nr * 4 } } }));
      return p;
    };
    const other = file(`not ${b!.cpuBrand()}`, 64);
    expect(applyTuneFile(b!, other).source).toBe("model");
    expect(tuneState().note).toMatch(/was measured on not /);
    expect(b!.getBlocking("f32").set).toBe(false);

    const mine = file(b!.cpuBrand(), 64);
    expect(applyTuneFile(b!, mine)).toEqual({ source: "file", path: mine });
    expect(b!.getBlocking("f32")).toMatchObject({ kc: 64, mc: f32.mr * 4, nc: f32.nr * 4, set: true });
    expect(nativeInfo().tuning).toBe(`file ${mine}`);

    expect(() => applyTuneFile(b!, file(b!.cpuBrand(), 40))).toThrow(/blocking.f32: .*kc = 40/);
    expect(() => applyTuneFile(b!, join(dir, "missing.json"))).toThrow(/MOEKIT_TUNE=.*missing.json: no such file/);
    // the default file lives under XDG_CACHE_HOME; none there: the model's blocking
    expect(applyTuneFile(b!, undefined, { XDG_CACHE_HOME: dir }).source).toBe("model");
  });

  it("moekit tune measures a small shape and writes the file start-up applies", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moekit-tune-"));
    const out = join(dir, "t.json");
    const log = console.log;
    const lines: string[] = [];
    console.log = (m: string) => lines.push(m);
    useBackend("native");
    try {
      expect(await tuneCommand(["--tokens", "64", "--dims", "64,96,4,2", "--pairs", "1", "--kinds", "f32", "--out", out, "--json"])).toBe(0);
    } finally {
      console.log = log;
      useBackend("ref");
    }
    const printed = JSON.parse(lines.join("\n")) as { saved: string; trials: { kind: string; ratio: number }[] };
    expect(printed.saved).toBe(out);
    expect(printed.trials.length).toBeGreaterThan(1);
    const file = parseTuneFile(readFileSync(out, "utf8"), out);
    expect(file.cpu).toBe(b!.cpuBrand());
    expect(Object.keys(file.blocking)).toEqual(["f32"]);
    expect(applyTuneFile(b!, out).source).toBe("file");
    expect(b!.getBlocking("f32")).toMatchObject({ ...file.blocking.f32, set: true });
  });
});
