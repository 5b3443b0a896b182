#!/usr/bin/env node
// The installed entry point: loads the TypeScript agent through tsx, wherever it is run from.
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");
