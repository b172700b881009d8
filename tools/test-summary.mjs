// Prints vitest's JSON report as the plain closing line CI reads: "Tests: N passed, N failed, N skipped".
import { readFileSync } from "node:fs";

const r = JSON.parse(readFileSync(process.argv[2] ?? "build/vitest.json", "utf8"));
console.log(`Tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
process.exitCode = r.numFailedTests > 0 || !r.success ? 1 : 0;
