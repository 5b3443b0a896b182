#!/usr/bin/env node
// The gridx CLI entry point: loads the TypeScript sources through tsx.
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");
