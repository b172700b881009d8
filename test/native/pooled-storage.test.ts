// The addon's pooled storage: a block whose array V8 frees goes back to the free list and is handed out again (with
// its old contents), within the budget; and StoragePool takes its large fresh buffers from such a source.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { nativeBinding } from "../../src/backends/native/binding.js";
import { StoragePool, type FreshStorage } from "../../src/core/pool.js";
import { useLargeBuffers, zeroed } from "../../src/core/dtype.js";
import { Tensor } from "../../src/core/tensor.js";
import { quantizeWeight } from "../../src/ops/quantized-weight.js";

const addon = join(import.meta.dirname, "..", "..", "native", "build", "Release", "moekit_native.node");

// Runs `body` in a fresh node with --expose-gc and the addon as `b`; returns what it printed as JSON.
function inChild(body: string): unknown {
  const src = `const b = require(${JSON.stringify(addon)});
const settle = async () => { for (let i = 0; i < 4; i++) { gc(); await new Promise((r) => setTimeout(r, 20)); } };
(async () => { ${body} })().catch((e) => { console.error(e); process.exit(1); });`;
  const r = spawnSync(process.execPath, ["--expose-gc", "-e", src], { encoding: "utf8", timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

describe.skipIf(nativeBinding() === undefined)("pooledF32 (native)", () => {
  it("reuses the block of an array that V8 freed, old contents and all, without a new mapping", () => {
    const out = inChild(`
      const n = 3 << 20;  // 12 MiB
      let a = b.pooledF32(n);
      a.fill(7.5);
      const held = b.pooledStats();
      a = null;
      await settle();
      const freed = b.pooledStats();
      const c = b.pooledF32(n);
      console.log(JSON.stringify({ length: c.length, first: c[0], last: c[n - 1], held, freed, after: b.pooledStats() }));`) as Record<string, unknown>;
    const mib = 2 ** 20;
    expect(out).toEqual({
      length: 3 << 20,
      first: 7.5,
      last: 7.5,
      held: { freeBytes: 0, liveBytes: 12 * mib },
      freed: { freeBytes: 12 * mib, liveBytes: 0 },
      after: { freeBytes: 0, liveBytes: 12 * mib },
    });
  });

  it("mappedBuffer takes a freed block too, cleared; a block up to 1/8 larger serves a request", () => {
    const out = inChild(`
      let a = b.pooledF32(9 << 20);  // 36 MiB
      a.fill(3);
      a = null;
      await settle();
      const z = new Float32Array(b.mappedBuffer(34 << 20));  // 34 MiB: the 36 MiB block, cleared
      let nonzero = 0;
      for (const v of z) if (v !== 0) nonzero++;
      const reused = b.pooledStats();
      const far = b.pooledF32(4 << 20);  // 16 MiB: no free block fits, a new mapping
      console.log(JSON.stringify({ bytes: z.byteLength, nonzero, reused, far: far.length, after: b.pooledStats() }));`);
    const mib = 2 ** 20;
    expect(out).toEqual({
      bytes: 34 * mib,
      nonzero: 0,
      reused: { freeBytes: 0, liveBytes: 36 * mib },
      far: 4 << 20,
      after: { freeBytes: 0, liveBytes: 52 * mib },
    });
  });

  it("unmaps what is freed beyond its budget, and trimPooled empties the free list", () => {
    const out = inChild(`
      b.setPooledMaxBytes(4 << 20);
      let a = b.pooledF32(1 << 20), c = b.pooledF32(3 << 20);  // 4 MiB (2 grains) and 12 MiB
      a.fill(1); c.fill(1);
      a = null; c = null;
      await settle();
      const kept = b.pooledStats();
      b.trimPooled();
      console.log(JSON.stringify({ kept, trimmed: b.pooledStats() }));`);
    expect(out).toEqual({ kept: { freeBytes: 4 * 2 ** 20, liveBytes: 0 }, trimmed: { freeBytes: 0, liveBytes: 0 } });
  });

  it("rejects a length that is not a positive integer", () => {
    const b = nativeBinding()!;
    for (const n of [0, -1, 1.5, NaN]) expect(() => b.pooledF32(n)).toThrow(/length must be a positive integer/);
    for (const n of [0, -1, 1.5, NaN]) expect(() => b.mappedBuffer(n)).toThrow(/length must be a positive integer/);
  });

  it("mappedBuffer gives a zeroed, writable buffer of exactly the bytes asked for", () => {
    const buf = nativeBinding()!.mappedBuffer((12 << 20) + 5);
    expect(buf.byteLength).toBe((12 << 20) + 5);
    const u8 = new Uint8Array(buf);
    expect(u8.every((v) => v === 0)).toBe(true);
    u8[u8.length - 1] = 9;
    expect(u8[u8.length - 1]).toBe(9);
  });
});

// The byte counts asked of the large-buffer source while `body` runs (a spy source in its place, the addon's put back).
function largeBuffersAsked(body: () => void): number[] {
  const asked: number[] = [];
  useLargeBuffers((bytes) => {
    asked.push(bytes);
    return new ArrayBuffer(bytes);
  });
  try {
    body();
  } finally {
    useLargeBuffers(nativeBinding() === undefined ? undefined : (bytes) => nativeBinding()!.mappedBuffer(bytes));
  }
  return asked;
}

describe("zeroed", () => {
  it("takes buffers of >= 8 MiB from the large-buffer source, and smaller ones from the JS heap", () => {
    const asked = largeBuffersAsked(() => {
      expect(zeroed(Float32Array, 2 << 20).length).toBe(2 << 20);
      expect(zeroed(Uint16Array, 1000).length).toBe(1000);
      expect(zeroed(Uint8Array, 8 << 20).byteLength).toBe(8 << 20);
    });
    expect(asked).toEqual([8 << 20, 8 << 20]);
  });
});

describe("large buffers in huge pages", () => {
  it("a bf16 tensor's bit patterns and a served weight's codes come from the large-buffer source", () => {
    const n = 4 << 20;
    const bf = new Tensor(new Float32Array(n).fill(1.5), [n], "bfloat16");
    expect(largeBuffersAsked(() => expect(bf.bf16BitsOf()[n - 1]).toBe(0x3fc0))).toEqual([2 * n]);
    const w = new Tensor(new Float32Array(16 << 20).fill(0.25), [16, 1024, 1024], "float32");
    for (const [mode, bytes] of [["int8", 16 << 20], ["int4", 8 << 20]] as const) {
      let codes: Tensor | undefined;
      expect(largeBuffersAsked(() => (codes = quantizeWeight(w, mode).codes))).toContain(bytes);
      expect(codes!.data.byteLength).toBe(bytes);
      expect(codes!.data[0]).toBe(mode === "int8" ? 127 : 0x77); // 0.25 is the column's abs-max: Q - 0.5
    }
  });

  // a fresh process: the weights are made before any primitive has run (nothing chose a backend yet)
  const firstBuffer = (backend: string): unknown => {
    const src = `const m = await import(${JSON.stringify(join(import.meta.dirname, "..", "..", "src", "index.ts"))});
const b = await import(${JSON.stringify(join(import.meta.dirname, "..", "..", "src", "backends", "native", "binding.ts"))});
const before = b.nativeBinding()?.pooledStats().liveBytes ?? 0;
const w = m.zeros([4, 1024, 1024]);
console.log(JSON.stringify({ live: (b.nativeBinding()?.pooledStats().liveBytes ?? 0) - before, n: w.size, backend: m.runtimeInfo().backend }));`;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", src], {
      encoding: "utf8",
      env: { ...process.env, MOEKIT_BACKEND: backend },
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split("\n").pop()!);
  };

  it.runIf(nativeBinding() !== undefined)("weights made before the first primitive land on the native backend's mapped blocks", () => {
    expect(firstBuffer("native")).toEqual({ live: 16 << 20, n: 4 << 20, backend: "native" });
    expect(firstBuffer("ref")).toEqual({ live: 0, n: 4 << 20, backend: "ref" });
  });
});

describe("StoragePool with a fresh-storage source", () => {
  it("takes buffers of >= 1 MiB that it lacks from the source, and passes on its budget and clear()", () => {
    const calls: string[] = [];
    const src: FreshStorage = {
      take: (n) => {
        calls.push(`take ${n}`);
        return new Float32Array(n);
      },
      setMaxBytes: (bytes) => calls.push(`max ${bytes}`),
      trim: () => calls.push("trim"),
    };
    const pool = new StoragePool(8 * 2 ** 20);
    pool.useFreshStorage(src);
    const big = pool.take(2 ** 18);
    pool.take(1000);
    pool.give(big);
    expect(pool.take(2 ** 18)).toBe(big);  // recycled first
    pool.setMaxBytes(2 ** 22);
    pool.clear();
    expect(calls).toEqual([`max ${8 * 2 ** 20}`, `take ${2 ** 18}`, `max ${2 ** 22}`, "trim"]);
  });
});
