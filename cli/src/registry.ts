import type { Command } from "./cli.ts";
import { accessCommands } from "./commands/access.ts";
import { arrayCommands } from "./commands/arrays.ts";
import { broadcastCommands } from "./commands/broadcast.ts";
import { datasetCommands } from "./commands/datasets.ts";
import { gridCommands } from "./commands/grid.ts";
import { fleetCommands } from "./commands/fleet.ts";
import { jobCommands } from "./commands/jobs.ts";
import { projectCommands } from "./commands/projects.ts";
import { scheduleCommands } from "./commands/schedules.ts";
import { sessionCommands } from "./commands/sessions.ts";
import { setupCommands } from "./commands/setup.ts";

/** Every command, in the order `gridx --help` lists them. */
export const COMMANDS: Command[] = [...jobCommands, ...sessionCommands, ...arrayCommands, ...scheduleCommands, ...projectCommands, ...accessCommands, ...gridCommands, ...fleetCommands, ...broadcastCommands, ...datasetCommands, ...setupCommands];
