// The `parallel` namespace: process groups and differentiable collectives.
export { GroupBase, type Group } from "./group.js";
export { Mesh, MESH_AXES, type MeshAxis, type MeshShape, type OtherMeshAxis } from "./mesh.js";
export { createLocalGroup, runSpmd } from "./local-group.js";
export { runWorkers } from "./worker-group.js";
export { PortGroup } from "./port-group.js";
export { joinMpi, mpiUnavailableReason, type MpiGroup } from "./mpi-group.js";
export { runMpi, mpirunArgs } from "./mpi-launch.js";
export { agreeAcrossRanks } from "./agree.js";
export {
  allGather,
  allGatherAxis,
  psum,
  psumScatter,
  psumScatterAxis,
  allReduceSum,
  allGatherStack,
  raggedAllToAll,
  type RaggedParams,
} from "./collectives.js";
