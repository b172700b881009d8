// The `moe` namespace: MaxText's MoE layer, its functions under their MaxText names (camelCased).
export {
  DECODER_BLOCKS,
  MOE_DEFAULTS,
  moeConfig,
  parseMoeConfig,
  toMaxTextKeys,
  type ConfigOptions,
  type DecoderBlock,
  type MoeConfig,
  type RawConfig,
} from "./config.js";
export * from "./presets.js";
export * from "./gate-logit.js";
export * from "./routing.js";
export * from "./load-balance.js";
export * from "./permute.js";
export * from "./dispatch.js";
export * from "./experts.js";
export * from "./expert-parallel.js";
export * from "./tensor-parallel.js";
export * from "./routed-moe.js";
export * from "./routed-and-shared-moe.js";
export * from "./gated-shared-moe.js";
export * from "./shared-mlp.js";
