import { MoeError } from "../core/errors.js";
import type { MoeConfig } from "../moe/config.js";
import type { GoldenCase } from "./case.js";
import type { Produced } from "./run.js";

export async function runExpertParallelCase(c: GoldenCase, _cfg: MoeConfig): Promise<Produced> {
  throw new MoeError(`[golden] ${c.name}: expert parallelism not wired yet`);
}
