// Public surface of moekit: re-exports only.
export * from "./core/dtype.js";
export * from "./core/errors.js";
export { fmt as formatShape, size as shapeSize, type Shape } from "./core/shape.js";
export { Tensor, tensor, zeros, zerosLike, full, type GradNode } from "./core/tensor.js";
export { recycle, releaseRecycled, recycledBytes } from "./core/pool.js";
export { AdamW, SGD, type AdamWOptions, type SgdOptions } from "./optim/optimizers.js";

export { Prim, type PrimParams } from "./prims/prims.js";
export { shapeRules, type Aval } from "./prims/shape-rules.js";

export { grad, valueAndGrad, valueAndGradAsync, vjp, type ValueAndGrad, type VjpResult } from "./autodiff/grad.js";
export { customVjp } from "./autodiff/custom-vjp.js";
export { noGrad, stopGradient } from "./autodiff/graph.js";

export * from "./ops/elementwise.js";
export * from "./ops/movement.js";
export * from "./ops/reduce.js";
export * from "./ops/matmul.js";
export * from "./ops/indexing.js";
export * from "./ops/segment.js";
export * from "./ops/nn.js";

export type { Backend } from "./backends/backend.js";
export { refBackend } from "./backends/ref/index.js";

export { Module, type Params } from "./nn/module.js";
export { MlpBlock, dropout, type MlpBlockOptions } from "./nn/mlp.js";
export { ndDenseInit, defaultKernelInit, computeFans, type NdInitializer } from "./nn/init.js";
export { prngKey, split, foldIn, randomBits, uniform, normal, truncatedNormal, randint, type Key } from "./nn/random.js";

export * from "./moe/config.js";
export * from "./moe/presets.js";
export * from "./moe/gate-logit.js";
export * from "./moe/routing.js";
export * from "./moe/load-balance.js";
export * from "./moe/permute.js";
export * from "./moe/dispatch.js";
export * from "./moe/experts.js";
export * from "./moe/expert-parallel.js";
export * from "./moe/routed-moe.js";
export * from "./moe/routed-and-shared-moe.js";
export * from "./moe/gated-shared-moe.js";

export type { Group } from "./parallel/group.js";
export { createLocalGroup, runSpmd } from "./parallel/local-group.js";
export { runWorkers } from "./parallel/worker-group.js";
export { PortGroup } from "./parallel/port-group.js";
export { allGather, psumScatter, allReduceSum, allGatherStack, raggedAllToAll, type RaggedParams } from "./parallel/collectives.js";

export * from "./io/index.js";
export * from "./checkpoint/index.js";

export { useBackend, initFromEnv, runtimeInfo, type BackendChoice, type RuntimeInfo } from "./backends/select.js";
export { nativeInfo, setNativeThreads, type NativeInfo } from "./backends/native/index.js";
export { loadCase, compareTensor, GOLDEN_RTOL, type GoldenCase, type TensorCheck } from "./golden/case.js";
export { runCase, type CaseResult } from "./golden/run.js";
