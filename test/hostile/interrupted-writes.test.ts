// Hostile inputs, item "nothing lost": writes interrupted by a signal (sent by the writing process itself
// while it encodes the 7th of 12 tensors, so the timing is exact) leave the old state or the complete new one.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { tensor } from "../../src/core/tensor.js";
import { SafetensorsCheckpoint, loadSafetensors, saveSafetensors, saveShardedSafetensors } from "../../src/io/index.js";
import { runChild, temporariesIn, useScratch } from "./cli-harness.js";

const scratch = useScratch("interrupted");

function folderFor(name: string): string {
  const p = scratch(name);
  fs.mkdirSync(path.dirname(p));
  return p;
}

const expectComplete = (location: string): void => {
  const ckpt = SafetensorsCheckpoint.open(location);
  expect(ckpt.keys()).toHaveLength(12);
  expect(Array.from(ckpt.get("w11").data.subarray(0, 2))).toEqual([11, 11]);
  ckpt.close();
};

describe("a write interrupted by SIGTERM or SIGINT", () => {
  it.each(["SIGTERM", "SIGINT"])("%s during a sharded write: the folder is complete and no temporary is left", (signal) => {
    const out = folderFor("sharded");
    const r = runChild("interrupted-write.ts", [out, "sharded", signal]);
    expect(r.timedOut).toBe(false);
    expect(temporariesIn(path.dirname(out))).toEqual([]);
    expectComplete(out);
    expect(fs.readdirSync(out)).toHaveLength(13);
  });

  it("SIGTERM during a single-file write: the file is complete and no temporary is left", () => {
    const out = folderFor("out.safetensors");
    const r = runChild("interrupted-write.ts", [out, "single", "SIGTERM"]);
    expect(r.timedOut).toBe(false);
    expect(fs.readdirSync(path.dirname(out))).toEqual(["out.safetensors"]);
    expectComplete(out);
  });
});

describe("a write killed outright (SIGKILL: no cleanup possible)", () => {
  it("a sharded write leaves nothing under the final name (7 of 12 shards never appear there)", () => {
    const out = folderFor("sharded");
    const r = runChild("interrupted-write.ts", [out, "sharded", "SIGKILL"]);
    expect(r.signal).toBe("SIGKILL");
    expect(fs.existsSync(out)).toBe(false);
    // what remains is one hidden temporary folder, named for the output and the process
    expect(fs.readdirSync(path.dirname(out))).toEqual([expect.stringMatching(/^\.sharded\.\d+-\d+\.moekit-tmp$/)]);
    // the next write to the same output removes what the dead process left
    saveShardedSafetensors(out, { w: tensor([1, 2]) }, { maxShardBytes: 8 });
    expect(fs.readdirSync(path.dirname(out))).toEqual(["sharded"]);
  });

  it("a temporary of a process still running is left alone", () => {
    const out = folderFor("busy.safetensors");
    const live = path.join(path.dirname(out), `.busy.safetensors.${process.ppid}-0.moekit-tmp`);
    fs.writeFileSync(live, "being written");
    saveSafetensors(out, { w: tensor([1]) });
    expect(fs.readdirSync(path.dirname(out)).sort()).toEqual([path.basename(live), "busy.safetensors"]);
  });

  it("a single-file write leaves the old file as it was", () => {
    const out = folderFor("out.safetensors");
    expect(runChild("interrupted-write.ts", [out, "single", "SIGTERM"]).timedOut).toBe(false);
    const before = fs.readFileSync(out);
    const r = runChild("interrupted-write.ts", [out, "single", "SIGKILL"]);
    expect(r.signal).toBe("SIGKILL");
    expect(fs.readFileSync(out).equals(before)).toBe(true);
    expect(Object.keys(loadSafetensors(out))).toHaveLength(12);
  });
});

describe("the process-level cleanup registry", () => {
  it.each(["SIGTERM", "SIGINT"] as const)("%s removes every registered temporary and ends the process by that signal", async (signal) => {
    const dir = folderFor("registry");
    fs.mkdirSync(dir);
    const child = spawn(process.execPath, ["--import", "tsx", path.join(import.meta.dirname, "children", "temporary-signal.ts"), dir], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    let stdout = "";
    const ended = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_, sig) => resolve(sig)));
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes("ready")) {
        expect(temporariesIn(dir)).toHaveLength(2);
        child.kill(signal);
      }
    });
    const sig = await ended;
    clearTimeout(killer);
    expect(sig).toBe(signal);
    expect(stdout).not.toContain("not interrupted");
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
