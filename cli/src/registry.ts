import type { Command } from "./cli.ts";
import { datasetCommands } from "./commands/datasets.ts";
import { gridCommands } from "./commands/grid.ts";
import { jobCommands } from "./commands/jobs.ts";
import { setupCommands } from "./commands/setup.ts";

/** Every command, in the order `gridx --help` lists them. */
export const COMMANDS: Command[] = [...jobCommands, ...gridCommands, ...datasetCommands, ...setupCommands];
