// The quantization keys of a MoE config (QUANTIZATION.md): which modes run, which are refused and why.
import { readFileSync } from "node:fs";
import { ConfigError } from "../core/errors.js";

/** One intmp entry: bits of the weights (rhs) and of the activations (lhs); absent = not quantized. */
interface QuantCfgEntry {
  w_bits?: number | null;
  a_bits?: number | null;
  tile_size?: number;
  w_scale?: number;
}

/** intmp's mixed-precision map: MaxText module-path regex → entry, with "__default__" for every other module. */
export type QuantCfg = Record<string, QuantCfgEntry>;

const QUANT_MODES = ["", "int8", "intmp"] as const;
/** MaxText modes that need use_qwix_quantization=true (configure_quantization raises without it). */
const QWIX_ONLY = ["int4", "int8w", "int4w", "fp8_full", "fp8_gpu", "fp8_nanoo"];
/** GPU recipes (NVIDIA fp8, AMD nanoo fp8, TransformerEngine). */
const GPU_RECIPES = ["fp8", "nanoo_fp8", "aqt_fp8", "aqt_fp8_full"];
const QUANT_BITS = [4, 8];
const ENTRY_KEYS = ["w_bits", "a_bits", "tile_size", "w_scale"];

function checkEntry(key: string, name: string, e: unknown): void {
  if (e === null || typeof e !== "object" || Array.isArray(e)) throw new ConfigError(key, e, `entry "${name}" must be a mapping`);
  const entry = e as Record<string, unknown>;
  for (const k of Object.keys(entry)) {
    if (!ENTRY_KEYS.includes(k))
      throw new ConfigError(key, entry, `entry "${name}" has an unknown field ${k} (known: ${ENTRY_KEYS.join(", ")})`);
  }
  for (const bits of ["w_bits", "a_bits"]) {
    const v = entry[bits];
    if (v !== undefined && v !== null && !QUANT_BITS.includes(v as number)) {
      throw new ConfigError(key, entry, `${bits}=${JSON.stringify(v)} in "${name}": must be 8 or 4 (or null: not quantized)`);
    }
  }
  if (entry.w_bits == null && entry.a_bits == null)
    throw new ConfigError(key, entry, `entry "${name}" quantizes nothing (no w_bits, no a_bits)`);
  if (entry.tile_size !== undefined && entry.tile_size !== -1) {
    throw new ConfigError(
      key,
      entry,
      `tile_size=${JSON.stringify(entry.tile_size)} in "${name}": sub-channel tiling is not supported (-1 only)`,
    );
  }
  if (entry.w_scale !== undefined && entry.w_scale !== 1) {
    throw new ConfigError(key, entry, `w_scale=${JSON.stringify(entry.w_scale)} in "${name}": only 1 (absmax calibration) is supported`);
  }
}

function checkQuantCfg(key: string, cfg: unknown): QuantCfg {
  if (cfg === null || typeof cfg !== "object" || Array.isArray(cfg))
    throw new ConfigError(key, cfg, "must be a mapping of module regex to {w_bits, a_bits}");
  let map = cfg as Record<string, unknown>;
  // a bare entry ({"w_bits": 4}, as QUANTIZATION.md writes it) stands for {"__default__": {...}}
  const keys = Object.keys(map);
  if (keys.length > 0 && keys.every((k) => ENTRY_KEYS.includes(k))) map = { __default__: map };
  for (const [name, e] of Object.entries(map)) {
    // the layer's MaxText module paths are not modelled: one precision for the whole layer
    if (name !== "__default__") throw new ConfigError(key, cfg, `per-module entry "${name}" is not supported; give "__default__" only`);
    checkEntry(key, name, e);
  }
  if (map.__default__ === undefined) throw new ConfigError(key, cfg, 'needs a "__default__" entry');
  return map as QuantCfg;
}

/**
 * quant_cfg as given, or read from the JSON file at quant_cfg_path (relative to the working directory, as MaxText).
 * A path "inline:…" says the file's content is the quant_cfg given beside it (as the golden cases write it).
 */
export function readQuantCfg(given: unknown, path: string): QuantCfg | null {
  if (given !== null && given !== undefined) {
    if (path !== "" && !path.startsWith("inline:"))
      throw new ConfigError("quant_cfg", given, `is given twice, also as quant_cfg_path=${JSON.stringify(path)}; keep one`);
    return checkQuantCfg("quant_cfg", given);
  }
  if (path === "") return null;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError("quant_cfg_path", path, `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new ConfigError("quant_cfg_path", path, `is not valid JSON (${(e as Error).message})`);
  }
  return checkQuantCfg("quant_cfg_path", obj);
}

interface QuantKeys {
  quantization: string;
  quantCfg: QuantCfg | null;
  useQwixQuantization: boolean;
}

/** Refuses modes moekit does not compute, naming the key and the value. */
export function validateQuantization(c: QuantKeys): void {
  const q = c.quantization;
  if (GPU_RECIPES.includes(q) || q.startsWith("te_")) {
    throw new ConfigError("quantization", q, "is a GPU recipe (fp8 / TransformerEngine); moekit runs int8 and intmp only");
  }
  if (QWIX_ONLY.includes(q) && !c.useQwixQuantization) {
    throw new ConfigError("quantization", q, "needs use_qwix_quantization=true in MaxText (configure_quantization raises without it)");
  }
  if (c.useQwixQuantization) {
    throw new ConfigError(
      "use_qwix_quantization",
      true,
      "qwix-intercepted quantization is not implemented; use quantization=int8 or intmp",
    );
  }
  if (!(QUANT_MODES as readonly string[]).includes(q)) {
    throw new ConfigError("quantization", q, `unknown mode (known: "", int8, intmp)`);
  }
  if (q === "intmp" && c.quantCfg === null) throw new ConfigError("quantization", q, "intmp needs quant_cfg or quant_cfg_path");
  if (q !== "intmp" && c.quantCfg !== null)
    throw new ConfigError("quant_cfg", c.quantCfg, `is read only with quantization=intmp, not ${JSON.stringify(q)}`);
}
