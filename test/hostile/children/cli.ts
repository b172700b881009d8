// The CLI as a child process (what bin/moekit.js runs), for the hostile tests that must be bounded in time.
import { main } from "../../../src/cli/main.js";

process.exitCode = await main(process.argv.slice(2));
