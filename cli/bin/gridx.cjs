#!/usr/bin/env node
// The gridx CLI: its bundle (npm run build, which npm install runs), on plain Node. CommonJS
// because it starts faster than an ES module (see scripts/build-cli.ts); loading it runs it.
// oxlint-disable-next-line import/no-unassigned-import
require("../dist/gridx.cjs");
