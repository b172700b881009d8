import { MoeError } from "../../core/errors.js";
import { intFlag, parseCommandArgs } from "../flags.js";
import { moeConfig } from "../../moe/config.js";
import { RoutedMoE } from "../../moe/routed-moe.js";
import { foldIn, normal, prngKey } from "../../nn/random.js";
import { runtimeInfo } from "../../backends/select.js";
import { nativeBinding } from "../../backends/native/binding.js";
import { applyTuneFile, defaultTunePath, writeTuneFile, type KindBlocking, type TuneFile } from "../../backends/native/tune-file.js";
import { readEnv } from "../../core/env.js";

const HELP = `Usage: moekit tune [options]

Measures the native GEMM engine's block sizes on this machine and saves the fastest in this CPU's tune file, which
the native backend applies at start-up (moekit info shows the blocking in use; MOEKIT_TUNE=off ignores the file).
Block sizes change speed only: outputs are the same bits whatever they are.

It starts from the blocking the cache model derives (moekit info), tries halving and doubling nc, kc and mc in turn
on a routed MoE forward, and keeps a change only where it is faster by --min-gain in paired timings (the candidate and
the best so far alternate; the median of their time ratios decides), so the VM's drift does not pick a winner.

Options:
  --tokens T        tokens per forward (default 1024)
  --dims D,H,E,K    emb_dim, moe_mlp_dim, num_experts, num_experts_per_tok (default 1024,1408,64,8: the bench shape)
  --pairs N         paired timings per candidate (default 3)
  --min-gain F      the least speed-up that replaces the best so far (default 0.02)
  --kinds LIST      f32 and/or bf16 (the bf16 path's kind: dpbf16 or amx), comma separated (default both where the
                    CPU has a bf16 kind)
  --out FILE        where to save (default: the file start-up reads, ~/.cache/moekit/tune/<cpu>-<isa>.json)
  --dry-run         measure and print, save nothing
  --json            one JSON object`;

interface Trial extends KindBlocking {
  kind: string;
  /** Median over the pairs of (this candidate's time / the best's), 1 for the starting point. */
  ratio: number;
  kept: boolean;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

function parseDims(text: string): [number, number, number, number] {
  const parts = text.split(",");
  if (parts.length !== 4) throw new MoeError(`--dims ${text}: expected D,H,E,K`);
  const [D, H, E, K] = parts.map((p, i) => intFlag(p, `--dims (${"DHEK"[i]})`, 1)) as [number, number, number, number];
  if (K > E) throw new MoeError(`--dims ${text}: K = ${K} exceeds E = ${E}`);
  return [D, H, E, K];
}

/** The next value of one block size: f times v, rounded down to a multiple of `step`, at least `step`. */
function scaled(v: number, f: number, step: number, max: number): number {
  return Math.min(max, Math.max(step, Math.floor((v * f) / step) * step));
}

export async function tuneCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs({
    args: argv,
    options: {
      tokens: { type: "string" },
      dims: { type: "string" },
      pairs: { type: "string" },
      "min-gain": { type: "string" },
      kinds: { type: "string" },
      out: { type: "string" },
      "dry-run": { type: "boolean" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help === true) {
    console.log(HELP);
    return 0;
  }
  const b = nativeBinding();
  if (runtimeInfo().backend !== "native" || b === undefined) {
    throw new MoeError(
      `tune measures the native backend, which is not in use (${runtimeInfo().native.reason ?? `MOEKIT_BACKEND=${runtimeInfo().backend}`})`,
    );
  }
  const T = values.tokens === undefined ? 1024 : intFlag(values.tokens, "--tokens", 1, 1 << 20);
  const [D, H, E, K] = values.dims === undefined ? [1024, 1408, 64, 8] : parseDims(values.dims);
  const pairs = values.pairs === undefined ? 3 : intFlag(values.pairs, "--pairs", 1, 100);
  const minGain = values["min-gain"] === undefined ? 0.02 : Number(values["min-gain"]);
  if (!Number.isFinite(minGain) || minGain < 0 || minGain >= 1)
    throw new MoeError(`--min-gain ${values["min-gain"]} must be a number in [0, 1)`);
  const bf16Kind = b.isa() === "avx512" && b.bf16Path() !== "widen" ? (b.bf16Path() === "amx" ? "amx" : "dpbf16") : undefined;
  const asked = (values.kinds ?? "f32,bf16").split(",");
  for (const k of asked) if (k !== "f32" && k !== "bf16") throw new MoeError(`--kinds ${values.kinds}: unknown kind "${k}" (f32, bf16)`);
  const json = values.json === true;
  const log = (m: string): void => {
    if (!json) console.error(`[moekit] ${m}`);
  };
  if (asked.includes("bf16") && bf16Kind === undefined)
    log(`bf16: the bf16 path is ${b.bf16Path()} (fp32 multiplies), nothing to tune beside f32`);
  const kinds = asked.flatMap((k) => (k === "f32" ? ["f32"] : bf16Kind !== undefined ? [bf16Kind] : []));

  applyTuneFile(b, "off"); // every kind back to the model's blocking
  const trials: Trial[] = [];
  const result: Record<string, KindBlocking> = {};
  const key = prngKey(0);
  for (const kind of kinds) {
    const dtype = kind === "f32" ? "float32" : "bfloat16";
    const cfg = moeConfig({
      decoder_block: "mixtral",
      num_experts: E,
      num_experts_per_tok: K,
      emb_dim: D,
      moe_mlp_dim: H,
      mlp_dim: H,
      dtype,
      weight_dtype: dtype,
    });
    const layer = new RoutedMoE(cfg, { key: foldIn(key, 1) });
    const x = normal(foldIn(key, 2), [1, T, D], dtype);
    const timeWith = (k: KindBlocking): number => {
      b.setBlocking(kind, k.kc, k.mc, k.nc);
      const t0 = performance.now();
      layer.forward(x);
      return performance.now() - t0;
    };
    const start = b.getBlocking(kind);
    let best: KindBlocking = { kc: start.kc, mc: start.mc, nc: start.nc };
    log(`${kind}: T=${T} D=${D} H=${H} E=${E} K=${K}, ${b.threads()} threads; the model's kc ${best.kc} mc ${best.mc} nc ${best.nc}`);
    timeWith(best); // warm-up: weights paged in, pools filled
    trials.push({ kind, ...best, ratio: 1, kept: true });
    for (const field of ["nc", "kc", "mc"] as const) {
      const step = field === "kc" ? 32 : field === "mc" ? start.mr : start.nr;
      for (const f of [0.5, 2]) {
        const cand = { ...best, [field]: scaled(best[field], f, step, field === "kc" ? 4096 : 65536) };
        if (cand[field] === best[field] || trials.some((t) => t.kind === kind && t.kc === cand.kc && t.mc === cand.mc && t.nc === cand.nc))
          continue;
        timeWith(cand);
        const ratios: number[] = [];
        for (let i = 0; i < pairs; i++) {
          if (i % 2 === 0) {
            const tb = timeWith(best);
            ratios.push(timeWith(cand) / tb);
          } else {
            const tc = timeWith(cand);
            ratios.push(tc / timeWith(best));
          }
        }
        const ratio = median(ratios);
        const kept = ratio < 1 - minGain;
        trials.push({ kind, ...cand, ratio, kept });
        log(`${kind}: ${field} ${best[field]} -> ${cand[field]}: ${ratio.toFixed(3)}x the time${kept ? " (kept)" : ""}`);
        if (kept) best = cand;
      }
    }
    result[kind] = best;
    b.setBlocking(kind, best.kc, best.mc, best.nc);
  }
  const out = values.out ?? defaultTunePath(b.cpuBrand(), b.isa());
  const file: TuneFile = {
    moekitTune: 1,
    cpu: b.cpuBrand(),
    isa: b.isa(),
    blocking: result,
    threads: b.threads(),
    shape: { T, D, H, E, K },
    date: new Date().toISOString(),
    trials,
  };
  if (values["dry-run"] !== true) writeTuneFile(out, file);
  // back to what start-up would apply (the file just written, unless --out put it elsewhere)
  applyTuneFile(b, readEnv().tune);
  if (json) console.log(JSON.stringify({ ...file, saved: values["dry-run"] === true ? null : out }, null, 2));
  else {
    for (const [kind, k] of Object.entries(result)) console.log(`${kind.padEnd(7)} kc ${k.kc} mc ${k.mc} nc ${k.nc}`);
    console.log(values["dry-run"] === true ? "not saved (--dry-run)" : `saved ${out}`);
  }
  return 0;
}
