import { listPresets } from "../../moe/presets.js";
import { parseCommandArgs } from "../flags.js";

export function presetsCommand(argv: string[]): number {
  const { values } = parseCommandArgs({ args: argv, options: { json: { type: "boolean" }, help: { type: "boolean", short: "h" } } });
  if (values.help === true) {
    console.log("Usage: moekit presets [--json]\n\nMaxText MoE model presets (full size) and their tiny-* twins for tests and demos.");
    return 0;
  }
  const ps = listPresets();
  if (values.json === true) {
    console.log(JSON.stringify(ps, null, 2));
    return 0;
  }
  const rows = ps.map((p) => {
    const k = p.keys;
    return [
      p.name,
      String(k.decoder_block),
      `E=${String(k.num_experts)} K=${String(k.num_experts_per_tok)}`,
      `D=${String(k.emb_dim)} H=${String(k.moe_mlp_dim)}`,
      p.layer,
      `${p.headOnly === true ? "[HEAD] " : ""}${p.note ?? ""}`,
    ];
  });
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows)
    console.log(
      r
        .map((c, i) => c.padEnd(w[i]!))
        .join("  ")
        .trimEnd(),
    );
  return 0;
}
