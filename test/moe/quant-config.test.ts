import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { moeConfig, toMaxTextKeys } from "../../src/moe/config.js";
import { refused } from "../harness/config.js";

const W8 = { __default__: { w_bits: 8 } };

describe("quantization config keys", () => {
  it("accepts int8, intmp with quant_cfg, and the local shard count", () => {
    const c = moeConfig({ quantization: "int8", quantization_local_shard_count: 2 });
    expect(c.quantization).toBe("int8");
    expect(c.quantizationLocalShardCount).toBe(2);
    expect(c.quantCfg).toBeNull();
    expect(moeConfig({ quantization: "intmp", quant_cfg: { __default__: { w_bits: 4, a_bits: 8 } } }).quantCfg).toEqual({
      __default__: { w_bits: 4, a_bits: 8 },
    });
    // a bare entry, as QUANTIZATION.md writes {"w_bits": 4}, is the default entry
    expect(moeConfig({ quantization: "intmp", quant_cfg: { w_bits: 4 } }).quantCfg).toEqual({ __default__: { w_bits: 4 } });
  });

  it("reads quant_cfg_path (MaxText's JSON file) and round-trips through toMaxTextKeys", () => {
    const file = join(mkdtempSync(join(tmpdir(), "moekit-qcfg-")), "int4_weight_only.json");
    writeFileSync(file, JSON.stringify({ __default__: { w_bits: 4 } }));
    const c = moeConfig({ quantization: "intmp", quant_cfg_path: file });
    expect(c.quantCfg).toEqual({ __default__: { w_bits: 4 } });
    const back = moeConfig(toMaxTextKeys(c));
    expect(back.quantCfg).toEqual(c.quantCfg);
    refused({ quantization: "intmp", quant_cfg_path: join(file, "..", "missing.json") }, "quant_cfg_path", /cannot be read.*ENOENT/);
    writeFileSync(file, "{not json");
    refused({ quantization: "intmp", quant_cfg_path: file }, "quant_cfg_path", /not valid JSON/);
  });

  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ["an fp8 GPU recipe", { quantization: "fp8" }, "quantization", /"fp8".*GPU recipe/],
    ["AMD's nanoo_fp8", { quantization: "nanoo_fp8" }, "quantization", /GPU recipe/],
    ["aqt_fp8_full", { quantization: "aqt_fp8_full" }, "quantization", /GPU recipe/],
    ["a TransformerEngine recipe", { quantization: "te_fp8_delayedscaling" }, "quantization", /te_fp8_delayedscaling.*GPU recipe/],
    ["int4 without qwix", { quantization: "int4" }, "quantization", /needs use_qwix_quantization=true/],
    ["fp8_full without qwix", { quantization: "fp8_full" }, "quantization", /needs use_qwix_quantization/],
    ["qwix interception", { quantization: "int4", use_qwix_quantization: true }, "use_qwix_quantization", /not implemented/],
    ["an unknown mode", { quantization: "int3" }, "quantization", /unknown mode/],
    ["intmp without quant_cfg", { quantization: "intmp" }, "quantization", /quant_cfg/],
    ["quant_cfg without intmp", { quantization: "int8", quant_cfg: W8 }, "quant_cfg", /only with quantization=intmp/],
    ["w_bits 2", { quantization: "intmp", quant_cfg: { __default__: { w_bits: 2 } } }, "quant_cfg", /w_bits=2.*8 or 4/],
    ["a_bits 16", { quantization: "intmp", quant_cfg: { __default__: { w_bits: 8, a_bits: 16 } } }, "quant_cfg", /a_bits=16/],
    ["an entry quantizing nothing", { quantization: "intmp", quant_cfg: { __default__: {} } }, "quant_cfg", /quantizes nothing/],
    ["an unknown entry field", { quantization: "intmp", quant_cfg: { __default__: { w_bit: 8 } } }, "quant_cfg", /unknown field w_bit/],
    ["a per-module entry", { quantization: "intmp", quant_cfg: { ...W8, ".*/wo": { w_bits: 4 } } }, "quant_cfg", /per-module/],
    ["sub-channel tiling", { quantization: "intmp", quant_cfg: { __default__: { w_bits: 8, tile_size: 128 } } }, "quant_cfg", /tile_size/],
    ["quant_cfg not a mapping", { quantization: "intmp", quant_cfg: [8] }, "quant_cfg", /mapping/],
    ["both quant_cfg and a path", { quantization: "intmp", quant_cfg: W8, quant_cfg_path: "x.json" }, "quant_cfg", /twice/],
    [
      "a fractional shard count",
      { quantization: "int8", quantization_local_shard_count: 1.5 },
      "quantization_local_shard_count",
      /integer/,
    ],
    [
      "a shard count below -1",
      { quantization: "int8", quantization_local_shard_count: -3 },
      "quantization_local_shard_count",
      /must be -1/,
    ],
  ];
  it.each(cases)("refuses %s, naming the key", (_n, keys, key, why) => refused(keys, key, why));
});
