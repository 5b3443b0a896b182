import { ObjectName, TRANSFER_LIMITS } from "../../../protocol/index.ts";
import type { OutputFile } from "../transfer/uploader.ts";

/** Names under this prefix are the agent's own (the job log); a job's files there are not kept. */
export const RESERVED_PREFIX = ".gridx/";

/** The bounds a job's /work/output is held to, besides its byte cap. */
export const OUTPUT_LIMITS = {
  /** Files kept per job; the job log is stored apart from them. */
  maxFiles: TRANSFER_LIMITS.artifacts_per_job,
  /** Entries (files, folders, links) looked at, while the job runs and after it: past this a job is over its limits, and no walk costs more. */
  maxEntries: 10 * TRANSFER_LIMITS.artifacts_per_job,
} as const;

/** Refused names shown in the job's log; the rest are counted. */
const NAMES_SHOWN = 5;
/** A shown name is cut here. */
const NAME_SHOWN_CHARS = 100;

export interface OutputJudgement {
  /** Kept, in name order. */
  keep: OutputFile[];
  /** Not kept for their names, in name order. */
  refused: string[];
  /** Within the rules but past the count or byte limits. */
  left: { files: number; bytes: number };
  /** Why the output breaks its limits (a failure, output_too_large), or null. */
  over: string | null;
  /** A line for the job's log naming refused files (a note; the job's outcome stands), or null. */
  note: string | null;
}

/**
 * Judges a job's output file by file: in name order, a file is kept if its name is one the
 * control plane stores (`ObjectName`) and it fits within `maxFiles` and `capBytes` with the
 * files kept before it. A bad name is only noted; files past the limits, or a listing that
 * stopped at `maxEntries` (`complete` false), make the output too large.
 *
 * @example
 * judgeOutputs([{ name: "a.csv", path, size: 10 }, { name: "b:c", path, size: 1 }], true, 1 << 20);
 * // keep: [a.csv], refused: ["b:c"], over: null, note: "[gridx: 1 output file(s) not kept: their names are not allowed (…): \"b:c\"]"
 */
export function judgeOutputs(sorted: OutputFile[], complete: boolean, capBytes: number): OutputJudgement {
  const keep: OutputFile[] = [];
  const refused: string[] = [];
  const left = { files: 0, bytes: 0 };
  let bytes = 0;
  for (const file of sorted) {
    if (file.name.startsWith(RESERVED_PREFIX) || !ObjectName.safeParse(file.name).success) refused.push(file.name);
    else if (keep.length >= OUTPUT_LIMITS.maxFiles || bytes + file.size > capBytes) {
      left.files++;
      left.bytes += file.size;
    } else {
      keep.push(file);
      bytes += file.size;
    }
  }
  return { keep, refused, left, over: overMessage(left, complete, capBytes), note: refusedNote(refused) };
}

function overMessage(left: OutputJudgement["left"], complete: boolean, capBytes: number): string | null {
  if (left.files === 0 && complete) return null;
  const limits = `a job keeps at most ${OUTPUT_LIMITS.maxFiles} files and ${capBytes} bytes of /work/output`;
  if (!complete) return `/work/output has more than ${OUTPUT_LIMITS.maxEntries} entries: only the first ${OUTPUT_LIMITS.maxEntries} looked at were judged, and of their files ${left.files} (${left.bytes} bytes) were left, besides all the rest (${limits})`;
  return `${left.files} file(s) (${left.bytes} bytes) in /work/output were left after the first by name (${limits})`;
}

function refusedNote(refused: string[]): string | null {
  if (refused.length === 0) return null;
  const shown = refused.slice(0, NAMES_SHOWN).map((n) => JSON.stringify(n.length > NAME_SHOWN_CHARS ? `${n.slice(0, NAME_SHOWN_CHARS)}…` : n));
  const more = refused.length > NAMES_SHOWN ? ` and ${refused.length - NAMES_SHOWN} more` : "";
  return `[gridx: ${refused.length} output file(s) not kept: their names are not allowed (letters, digits, spaces, '.', '_', '-' and '/', at most ${TRANSFER_LIMITS.name_chars} characters, not under ${RESERVED_PREFIX}): ${shown.join(", ")}${more}]`;
}
