// The `ops` namespace: tensor functions (NumPy / JAX names), each validating, broadcasting and binding primitives.
export * from "./elementwise.js";
export * from "./movement.js";
export * from "./reduce.js";
export * from "./matmul.js";
export * from "./indexing.js";
export * from "./segment.js";
export * from "./nn.js";
export { expertFfn, isFfnActivation, type ExpertFfnArgs, type ExpertFfnOptions, type FfnActivation } from "./expert-ffn.js";
