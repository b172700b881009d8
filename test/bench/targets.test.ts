import { describe, expect, it } from "vitest";
import { checkTargets } from "../../bench/targets.js";

const find = (rows: ReturnType<typeof checkTargets>, start: string) => rows.find((r) => r.target.startsWith(start))!;

describe("bench verdicts", () => {
  it("judge the served int8 forward against the int8 probe read beside it, the highest reading in parentheses", () => {
    const rows = (besideFraction: number) =>
      checkTargets([{ id: "forward-served-int8-int8", vsF32: 3.4, peakFraction: 0.65, besideFraction }]);
    const met = find(rows(0.71), "quantized: int8 forward >= 70%");
    expect(met.met).toBe(true);
    expect(met.measured).toBe("71% (65% of the highest reading)");
    expect(find(rows(0.69), "quantized: int8 forward >= 70%").met).toBe(false);
  });

  it("leave a target unjudged when its row has no reading beside it", () => {
    const r = find(checkTargets([{ id: "forward-served-int8-int8", vsF32: 3.4, peakFraction: 0.75 }]), "quantized: int8 forward >= 70%");
    expect(r.met).toBeUndefined();
    expect(r.measured).toBe("not measured");
  });

  it("give no verdict past a physical bound: over 100% of a probe, or under 1x a roofline (run BB's 0.87x was 'met')", () => {
    const roof = find(checkTargets([{ id: "roofline-T4096", rooflineRatio: 0.87 }]), "forward at T=4096");
    expect(roof.met).toBeUndefined();
    expect(roof.measured).toBe("0.87x: past its bound, so the probe beside under-read; no verdict");
    expect(find(checkTargets([{ id: "roofline-T4096", rooflineRatio: 1.2 }]), "forward at T=4096").met).toBe(true);
    const over = find(checkTargets([{ id: "decode-f32", besideFraction: 1.04, bandwidthFraction: 0.6 }]), "decode f32");
    expect(over.met).toBeUndefined();
    expect(over.measured).toMatch(/^104% \(60% of the highest reading\): past its bound/);
  });
});
