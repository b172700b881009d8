// A golden case run and checked: every expected tensor, and the side outputs the seed would not return.
import { moeConfig } from "../../moe/config.js";
import { compareTensor, type GoldenCase, type TensorCheck } from "./case.js";
import { runExpertParallelCase } from "./expert-parallel.js";
import { runSingleDevice } from "./single.js";

export interface CaseResult {
  name: string;
  ok: boolean;
  checks: TensorCheck[];
  worst: TensorCheck | undefined;
  error?: string;
}

const SIDE_OUTPUTS = ["lb_loss", "bias_updates"];

/** Run a case and check every expected tensor; also flags side outputs the seed would not return. */
export async function runCase(c: GoldenCase): Promise<CaseResult> {
  try {
    const cfg = moeConfig(c.config);
    const produced =
      c.expert_parallelism > 1 || c.expert_parallelism_path !== "none" ? await runExpertParallelCase(c, cfg) : runSingleDevice(c, cfg);
    const checks = c.expected_names.map((n) => compareTensor(n, produced[n], c.tensors[n]!));
    for (const n of SIDE_OUTPUTS) {
      if (!c.expected_names.includes(n) && produced[n] !== undefined) {
        checks.push({ name: n, ok: false, error: Infinity, note: "produced, but the seed returns None here" });
      }
    }
    const worst = [...checks].sort((a, b) => Number(a.ok) - Number(b.ok) || b.error - a.error)[0];
    return { name: c.name, ok: checks.every((x) => x.ok), checks, worst };
  } catch (e) {
    return { name: c.name, ok: false, checks: [], worst: undefined, error: (e as Error).message };
  }
}
