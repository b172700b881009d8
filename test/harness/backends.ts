import { nativeBackend as nativeBackendOf } from "../../src/backends/native/index.js";
const nativeBackend = nativeBackendOf();
import { useBackend, type BackendChoice } from "../../src/backends/select.js";
import type { Backend } from "../../src/backends/backend.js";
import type { Prim } from "../../src/prims/prims.js";

/** Backends to run a suite on: ref always, native when the addon is built (MOEKIT_REQUIRE_NATIVE=1 makes it required). */
export function testBackends(): BackendChoice[] {
  if (nativeBackend === undefined && process.env.MOEKIT_REQUIRE_NATIVE === "1") throw new Error("native addon required but unavailable");
  return nativeBackend === undefined ? ["ref"] : ["ref", "native"];
}

/** Run `f` with `name` as the active backend, restoring ref afterwards. */
export async function withBackend<T>(name: BackendChoice, f: () => T | Promise<T>): Promise<T> {
  useBackend(name);
  try {
    return await f();
  } finally {
    useBackend("ref");
  }
}

/** The native backend (when built), counting how many times it runs any of `prims`. */
export function countingNative(prims: readonly Prim[]): { backend: Backend; calls: () => number } {
  const native = nativeBackend!;
  let calls = 0;
  const backend: Backend = {
    name: "native-counting",
    supports: (p, ins, params) => native.supports(p, ins, params),
    run: (p, ins, params, outs) => {
      if (prims.includes(p)) calls++;
      return native.run(p, ins, params, outs);
    },
  };
  return { backend, calls: () => calls };
}
