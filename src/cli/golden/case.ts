// Golden case files (../shared/golden format): loading and tolerance-checked comparison.
import { MoeError } from "../../core/errors.js";
import { fmt } from "../../core/shape.js";
import { tensor, type Tensor } from "../../core/tensor.js";
import { checkJsonDepth, readRegularFile } from "../../io/files.js";

export type EpPath = "none" | "batch_sharded" | "batch_replicated" | "ring_of_experts";

export interface CaseTensor {
  shape: number[];
  dtype: "float32" | "float64" | "int32";
  data: number[];
}

export interface GoldenCase {
  name: string;
  description: string;
  config: Record<string, unknown>;
  expert_parallelism: number;
  expert_parallelism_path: EpPath;
  grad_objective: string;
  input_names: string[];
  expected_names: string[];
  tensors: Record<string, CaseTensor>;
}

/** Largest case file read (the golden cases are a few MiB). */
const MAX_CASE_BYTES = 256 << 20;

function fail(file: string, msg: string): never {
  throw new MoeError(`[golden] ${file}: ${msg}`);
}

/** JSON plus Python's bare Infinity / -Infinity / NaN tokens (as json.dump writes them). */
export function parseLenientJson(text: string): unknown {
  const fixed = text.replace(/(?<=[:,[]\s*)(-?Infinity|NaN)(?=\s*[,\]}])/g, (m) =>
    m === "NaN" ? "null" : m === "Infinity" ? "1e999" : "-1e999",
  );
  return JSON.parse(fixed);
}

/** Parse and validate one case file. */
export function loadCase(path: string): GoldenCase {
  const text = new TextDecoder().decode(readRegularFile(path, (problem) => fail(path, problem), MAX_CASE_BYTES));
  checkJsonDepth(text, (problem) => fail(path, problem));
  let obj: unknown;
  try {
    obj = parseLenientJson(text);
  } catch (e) {
    fail(path, `not valid JSON (${(e as Error).message})`);
  }
  const c = obj as Partial<GoldenCase>;
  for (const k of ["name", "config", "input_names", "expected_names", "tensors"] as const) {
    if (c[k] === undefined) fail(path, `missing "${k}"`);
  }
  for (const n of [...c.input_names!, ...c.expected_names!]) {
    const t = c.tensors![n];
    if (t === undefined) fail(path, `tensor "${n}" is listed but absent`);
    const n0 = t.shape.reduce((a, d) => a * d, 1);
    if (t.data.length !== n0) fail(path, `tensor "${n}" has ${t.data.length} values for shape ${fmt(t.shape)}`);
  }
  return {
    description: "",
    expert_parallelism: 1,
    expert_parallelism_path: "none",
    grad_objective: "sum(output * cotangent)",
    ...c,
  } as GoldenCase;
}

/** An input as a moekit tensor: float32 (stored exactly) or int32. */
export function inputTensor(c: GoldenCase, name: string): Tensor {
  const t = c.tensors[name]!;
  return tensor(t.data, t.shape, t.dtype === "int32" ? "int32" : "float32");
}

export interface TensorCheck {
  name: string;
  ok: boolean;
  /** max|got − expected| / max(1, max|expected|) for floats; mismatching elements for ints */
  error: number;
  note?: string;
}

export const GOLDEN_RTOL = 1e-4;

/** The golden tolerance: max|got − exp| ≤ 1e-4·max(1, max|exp|) for floats; integers exact. */
export function compareTensor(name: string, got: Tensor | number | undefined, exp: CaseTensor): TensorCheck {
  if (got === undefined) return { name, ok: false, error: Infinity, note: "not produced" };
  const g = typeof got === "number" ? { shape: [] as readonly number[], data: [got] } : { shape: got.shape, data: Array.from(got.data) };
  if (g.shape.join() !== exp.shape.join()) return { name, ok: false, error: Infinity, note: `shape ${fmt(g.shape)} != ${fmt(exp.shape)}` };
  if (exp.dtype === "int32") {
    const bad = exp.data.filter((v, i) => g.data[i] !== v).length;
    return { name, ok: bad === 0, error: bad, ...(bad > 0 ? { note: `${bad} of ${exp.data.length} differ` } : {}) };
  }
  let scale = 1;
  for (const v of exp.data) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < exp.data.length; i++) {
    const d = Math.abs(g.data[i]! - exp.data[i]!);
    worst = Number.isNaN(d) ? Infinity : Math.max(worst, d);
  }
  const error = worst / scale;
  return { name, ok: error <= GOLDEN_RTOL, error };
}
