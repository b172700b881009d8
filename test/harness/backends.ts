import { nativeBackend as nativeBackendOf } from "../../src/backends/native/index.js";
const nativeBackend = nativeBackendOf();
import { useBackend, type BackendChoice } from "../../src/backends/select.js";

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
