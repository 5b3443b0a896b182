import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { RunHooks } from "./runner.ts";

/** What any other path under the agent's state folder reads as in what a job is told. */
export const STATE_PLACEHOLDER = "<agent state>";

/** What the agent's scratch files (`<tmpdir>/gridx-*`, such as a job's SSH key) read as. */
export const SCRATCH_PLACEHOLDER = "<agent scratch>";

/** The names a job knows its folders by, each the host folder mounted there. */
export interface MountedFolders {
  input: string;
  output: string;
  code: string;
}

/** Characters that may go on a path the agent makes: a match must not stop inside a name. */
const NAME_CHAR = "[A-Za-z0-9._-]";
/** Where a path's text ends in a message: white space, quotes, or the punctuation around it. */
const PATH_REST = "[^\\s'\"`,;:()\\[\\]{}<>]*";

const escaped = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Rewrites the agent's host paths in text a job's submitter sees (a run's message, the
 * system lines of its log): a job folder reads as its mount point (`/work/input/a.csv`), any
 * other path under the state folder as `<agent state>`, the agent's scratch files as
 * `<agent scratch>`. Paths are matched in their absolute form; one reached through a symlink
 * to the state folder is not recognised. Apply it after the SecretMasker, so that a
 * secret that holds a path is still matched whole.
 *
 * @example
 * const paths = new HostPaths("/var/lib/gridx", { input: "/var/lib/gridx/jobs/i/j.1/input", ... });
 * paths.text("EEXIST: file already exists, mkdir '/var/lib/gridx/jobs/i/j.1/input/a'");
 * // "EEXIST: file already exists, mkdir '/work/input/a'"
 */
export class HostPaths {
  private readonly rules: [RegExp, string][];

  constructor(stateDir: string, folders: MountedFolders | null, scratchPrefix = join(tmpdir(), "gridx-")) {
    // Docker takes only absolute bind sources, so the agent's paths are absolute wherever they show.
    const at = (dir: string) => `(?<!${NAME_CHAR})${escaped(resolve(dir))}`;
    const mounted = folders ? (["input", "output", "code"] as const).map((name) => [folders[name], `/work/${name}`] as const) : [];
    this.rules = [
      // A job folder keeps the rest of its path: that part is the job's own.
      ...mounted.map(([dir, as]): [RegExp, string] => [new RegExp(`${at(dir)}(?!${NAME_CHAR})`, "g"), as]),
      // Anything else of the agent's is dropped whole: the rest names caches, instances and other jobs.
      [new RegExp(`${at(stateDir)}(?:/${PATH_REST}|(?!${NAME_CHAR}))`, "g"), STATE_PLACEHOLDER],
      [new RegExp(`${at(scratchPrefix)}${PATH_REST}`, "g"), SCRATCH_PLACEHOLDER],
    ];
  }

  text(text: string): string {
    return this.rules.reduce((t, [pattern, as]) => t.replace(pattern, as), text);
  }
}

/** `hooks` with the agent's host paths rewritten in the system lines a run writes to its log. */
export function hostPathsHidden(hooks: RunHooks, paths: HostPaths): RunHooks {
  return { started: hooks.started, output: hooks.output, congested: hooks.congested, system: (text) => hooks.system(paths.text(text)) };
}
