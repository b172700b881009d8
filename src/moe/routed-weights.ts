// The routed layer's weights as a forward takes them: their MaxText paths, and the check that refuses a record the
// config cannot use as given (a field it would drop, a missing one, a gate for another expert count, weights that
// disagree on a size) before any of them is read.
// Legend: D model dim, H expert hidden, E experts.
import { ConfigError, ShapeError } from "../core/errors.js";
import { fmt } from "../core/shape.js";
import { didYouMean } from "../core/suggest.js";
import type { Tensor } from "../core/tensor.js";
import type { MoeConfig } from "./config.js";
import type { ExpertWeight } from "./experts.js";
import type { RoutedMoeWeights } from "./routed-moe.js";

/** Field of RoutedMoeWeights holding each MaxText parameter path. */
export const ROUTED_PARAM_FIELDS: Readonly<Record<string, keyof RoutedMoeWeights>> = {
  "gate/kernel": "gateKernel",
  "gate/bias": "gateBias",
  wi_0: "wi0",
  wi_1: "wi1",
  wo: "wo",
  wi_0_bias: "wi0Bias",
  wi_1_bias: "wi1Bias",
  wo_bias: "woBias",
  per_expert_scale: "perExpertScale",
};
export const REQUIRED_PATHS: ReadonlySet<string> = new Set(["gate/kernel", "wi_0", "wi_1", "wo"]);

const FIELDS = Object.values(ROUTED_PARAM_FIELDS);
const PATH_OF = Object.fromEntries(Object.entries(ROUTED_PARAM_FIELDS).map(([p, f]) => [f, p])) as Record<string, string>;

/** The config key deciding whether each optional field is used: its value in a config, and the values that use it. */
const USED_WHEN: Partial<Record<keyof RoutedMoeWeights, [key: string, value: (cfg: MoeConfig) => unknown, uses: (v: unknown) => boolean]>> =
  {
    gateBias: ["routed_bias", (c) => c.routedBias, (v) => v === true],
    wi0Bias: ["mlp_bias", (c) => c.mlpBias, (v) => v === true],
    wi1Bias: ["mlp_bias", (c) => c.mlpBias, (v) => v === true],
    woBias: ["mlp_bias", (c) => c.mlpBias, (v) => v === true],
    perExpertScale: ["decoder_block", (c) => c.decoderBlock, (v) => v === "gemma4"],
  };

type Shaped = Tensor | ExpertWeight;

/**
 * Refuses a weights record that is not an object, holds a field RoutedMoeWeights does not have, lacks one the config
 * uses, holds one it would ignore, or has a gate for other than cfg.numExperts experts. `experts`: the experts this
 * rank holds (E, or E over the expert axis; a fraction is left to the mesh's size check).
 */
export function checkRoutedFields(cfg: MoeConfig, w: RoutedMoeWeights<ExpertWeight>, where: string, experts = cfg.numExperts): void {
  if (typeof w !== "object" || w === null)
    throw new ShapeError(`[${where}] the weights must be an object of tensors, got ${w === null ? "null" : typeof w}`);
  for (const k of Object.keys(w)) {
    if (!FIELDS.includes(k as keyof RoutedMoeWeights) && w[k as keyof typeof w] !== undefined)
      throw new ShapeError(`[${where}] unknown weight ${k}${didYouMean(k, FIELDS)} (the weights are ${FIELDS.join(", ")})`);
  }
  for (const f of FIELDS) {
    const t = w[f];
    const when = USED_WHEN[f];
    if (when === undefined) {
      if (t === undefined) throw new ShapeError(`[${where}] missing weight ${f} (MaxText ${PATH_OF[f]})`);
    } else {
      const [key, value, uses] = when;
      const v = value(cfg);
      if (t === undefined && uses(v)) throw new ConfigError(key, v, `needs the weight ${f} (MaxText ${PATH_OF[f]})`);
      if (t !== undefined && !uses(v))
        throw new ConfigError(
          key,
          v,
          `the weights hold ${f} (MaxText ${PATH_OF[f]}), which this config does not use: drop it or change ${key}`,
        );
    }
    if (t === undefined) continue;
    if (typeof t !== "object" || t === null || !Array.isArray((t as Shaped).shape))
      throw new ShapeError(
        `[${where}] weight ${f} must be a Tensor${f === "wi0" || f === "wi1" || f === "wo" ? " or a quantized weight" : ""}, got ${typeof t}`,
      );
  }
  const E = cfg.numExperts;
  const gate = w.gateKernel.shape;
  if (gate.length !== 2 || gate[1] !== E)
    throw new ShapeError(`[${where}] gateKernel (MaxText gate/kernel) is ${fmt(gate)}, expected [D,${E}] for num_experts=${E}`);
  if (w.gateBias !== undefined && (w.gateBias.shape.length !== 1 || w.gateBias.shape[0] !== E))
    throw new ShapeError(`[${where}] gateBias (MaxText gate/bias) is ${fmt(w.gateBias.shape)}, expected [${E}]`);
  if (
    w.perExpertScale !== undefined &&
    Number.isInteger(experts) &&
    (w.perExpertScale.shape.length !== 1 || w.perExpertScale.shape[0] !== experts)
  )
    throw new ShapeError(`[${where}] perExpertScale (MaxText per_expert_scale) is ${fmt(w.perExpertScale.shape)}, expected [${experts}]`);
}

/** The value most of `dims` give; those that differ are named against it. */
function agree(where: string, what: string, dims: [name: string, t: Shaped | undefined, axis: number][]): number {
  const present = dims.filter((d): d is [string, Shaped, number] => d[1] !== undefined);
  const count = new Map<number, number>();
  for (const [, t, a] of present) count.set(t.shape[a]!, (count.get(t.shape[a]!) ?? 0) + 1);
  const value = [...count.entries()].reduce((best, e) => (e[1] > best[1] ? e : best))[0];
  const odd = present.find(([, t, a]) => t.shape[a] !== value);
  if (odd !== undefined) {
    const [name, t, a] = odd;
    const others = present.filter(([, u, b]) => u.shape[b] === value).map(([n]) => n);
    throw new ShapeError(
      `[${where}] ${name} is ${fmt(t.shape)}: its ${what} is ${t.shape[a]}, where ${others.join(", ")} ${others.length > 1 ? "have" : "has"} ${value}`,
    );
  }
  return value;
}

/**
 * The single-device shapes: every expert weight has E = cfg.numExperts experts and the right rank, and they agree on
 * D (with the gate's, when it reads the layer input) and H. Returns the experts' D.
 */
export function checkExpertShapes(cfg: MoeConfig, w: RoutedMoeWeights<ExpertWeight>, where: string, gateReadsInput: boolean): number {
  const E = cfg.numExperts;
  const named: [string, Shaped | undefined, number][] = [
    ["wi0", w.wi0, 3],
    ["wi1", w.wi1, 3],
    ["wo", w.wo, 3],
    ["wi0Bias", w.wi0Bias, 2],
    ["wi1Bias", w.wi1Bias, 2],
    ["woBias", w.woBias, 2],
  ];
  for (const [name, t, rank] of named) {
    if (t === undefined) continue;
    if (t.shape.length !== rank || t.shape[0] !== E)
      throw new ShapeError(
        `[${where}] ${name} (MaxText ${PATH_OF[name]}) is ${fmt(t.shape)}, expected ${rank === 3 ? "[E,D,H] / [E,H,D]" : "[E,H] / [E,D]"} with E = num_experts = ${E}`,
      );
  }
  agree(where, "hidden width H", [
    ["wi0", w.wi0, 2],
    ["wi1", w.wi1, 2],
    ["wo", w.wo, 1],
    ["wi0Bias", w.wi0Bias, 1],
    ["wi1Bias", w.wi1Bias, 1],
  ]);
  return agree(where, "model dim D", [
    ["wi0", w.wi0, 1],
    ["wi1", w.wi1, 1],
    ["wo", w.wo, 2],
    ["woBias", w.woBias, 1],
    ...(gateReadsInput ? [["gateKernel", w.gateKernel, 0] as [string, Shaped, number]] : []),
  ]);
}
