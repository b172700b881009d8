// The `parallel` namespace: process groups and differentiable collectives.
export type { Group } from "./group.js";
export { createLocalGroup, runSpmd } from "./local-group.js";
export { runWorkers } from "./worker-group.js";
export { PortGroup } from "./port-group.js";
export { allGather, psumScatter, allReduceSum, allGatherStack, raggedAllToAll, type RaggedParams } from "./collectives.js";
