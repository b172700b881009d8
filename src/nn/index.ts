// The `nn` namespace: modules, MaxText's initialisers and explicit PRNG keys.
export { Module, type Params } from "./module.js";
export { MlpBlock, dropout, type MlpBlockOptions } from "./mlp.js";
export { ndDenseInit, defaultKernelInit, computeFans, type NdInitializer, type FanMode, type Distribution } from "./init.js";
export { prngKey, split, foldIn, randomBits, uniform, normal, truncatedNormal, randint, type Key } from "./random.js";
