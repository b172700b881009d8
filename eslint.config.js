import js from "@eslint/js";
import tseslint from "typescript-eslint";

// The layers of src/ and what each may import (DESIGN.md: core ← prims ← autodiff ← ops ← nn ← moe ← checkpoint ←
// cli; backends depend only on core and prims). Every other src/ folder is off limits to a layer.
const LAYERS = {
  core: [],
  prims: ["core"],
  backends: ["core", "prims"],
  autodiff: ["core", "prims", "backends"],
  ops: ["core", "prims", "autodiff"],
  nn: ["core", "prims", "autodiff", "ops"],
  optim: ["core", "prims", "autodiff", "ops"],
  parallel: ["core", "prims", "autodiff", "ops", "backends"],
  moe: ["core", "prims", "autodiff", "ops", "nn", "parallel"],
  io: ["core"],
  checkpoint: ["core", "prims", "autodiff", "ops", "nn", "moe", "io"],
};
const FOLDERS = [...Object.keys(LAYERS), "cli"];

const layerRules = Object.entries(LAYERS).map(([layer, allowed]) => {
  const banned = FOLDERS.filter((f) => f !== layer && !allowed.includes(f));
  return {
    files: [`src/${layer}/**/*.ts`],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              regex: `^(\\.\\./)+(${banned.join("|")})/`,
              message: `src/${layer} may import only ${allowed.length > 0 ? allowed.join(", ") : "nothing from other layers"} (the layer order in eslint.config.js)`,
            },
          ],
        },
      ],
    },
  };
});

export default tseslint.config(
  { ignores: ["dist/**", "build/**", "node_modules/**", "native/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.js", "**/*.mjs"],
    languageOptions: { globals: { console: "readonly", process: "readonly", URL: "readonly" } },
  },
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-non-null-assertion": "off",
      "no-constant-condition": ["error", { checkLoops: false }],
    },
  },
  ...layerRules,
);
