// The `optim` namespace: in-place float32 optimizers.
export { AdamW, SGD, type AdamWOptions, type SgdOptions } from "./optimizers.js";
