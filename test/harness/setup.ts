// Every test file starts on the reference backend (the library's own default is native when the addon loads);
// suites that test other backends choose them with useBackend / testBackends.
import { useBackend } from "../../src/backends/select.js";

useBackend("ref");
