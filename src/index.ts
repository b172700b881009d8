// Public surface of moekit: the essentials at the top level, the rest in namespaces. Importing it does nothing
// else: the backend is chosen on first use (MOEKIT_BACKEND, default native when the addon loads) or by useBackend.
export { Tensor, tensor, zeros, zerosLike, full, checkValues } from "./core/tensor.js";
export type { DType, TypedArray } from "./core/dtype.js";
export type { Shape, NestedNumbers } from "./core/shape.js";
export { MoeError, ShapeError, DTypeError, UnsupportedError, ConfigError } from "./core/errors.js";
export { prngKey, normal, uniform, split, foldIn, type Key } from "./nn/random.js";
export { grad, valueAndGrad, valueAndGradAsync, vjp, type ValueAndGrad, type VjpResult } from "./autodiff/grad.js";
export { customVjp } from "./autodiff/custom-vjp.js";
export { noGrad, stopGradient } from "./autodiff/graph.js";
export { recycle, releaseRecycled, recycledBytes } from "./core/pool.js";
export { memoryBudget, setMemoryBudget } from "./core/memory.js";
export { useBackend, runtimeInfo, type BackendChoice, type RuntimeInfo } from "./backends/select.js";
export { formatTrace, startTrace, stopTrace, type TraceEntry } from "./backends/trace.js";
export { jit } from "./backends/jit.js";
export { setNativeThreads, type NativeInfo } from "./backends/native/index.js";
export { moeConfig, type MoeConfig } from "./moe/config.js";
export { listPresets, getPreset, presetConfig, type Preset } from "./moe/presets.js";
export { GateLogit } from "./moe/gate-logit.js";
export { RoutedMoE, routedMoeForward, type MoeOutput, type RoutedMoeWeights } from "./moe/routed-moe.js";
export { RoutedAndSharedMoE } from "./moe/routed-and-shared-moe.js";
export { checkFinite, NonFiniteError } from "./moe/finite.js";
export { quantizeWeights, servedExpertBytes, type QuantizeMode } from "./moe/quantize-weights.js";
export { rowsWeight, tiledWeight, type QuantizedWeight, type WeightFormat } from "./ops/quantized-weight.js";

export * as ops from "./ops/index.js";
export * as nn from "./nn/index.js";
export * as moe from "./moe/index.js";
export * as optim from "./optim/index.js";
export * as parallel from "./parallel/index.js";
export * as io from "./io/index.js";
export * as checkpoint from "./checkpoint/index.js";
