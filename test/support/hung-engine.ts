import { once } from "node:events";
import { mkdtempSync } from "node:fs";
import { createServer, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface HungEngine {
  socketPath: string;
  /** Requests it has taken, by path without the API version. */
  readonly seen: string[];
  close(): Promise<void>;
}

/**
 * A Docker engine stand-in on a unix socket that takes every connection and request and,
 * unless `answer` replies to one (given its path without the /vX.Y prefix) and returns true,
 * never says a word: an engine that hangs.
 */
export async function hungEngine(answer: (path: string, res: ServerResponse) => boolean = () => false): Promise<HungEngine> {
  const socketPath = join(mkdtempSync(join(tmpdir(), "gridx-hung-engine-")), "docker.sock");
  const seen: string[] = [];
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://engine").pathname.replace(/^\/v\d+\.\d+/, "");
    seen.push(path);
    req.resume();
    answer(path, res);
  });
  server.listen(socketPath);
  await once(server, "listening");
  return {
    socketPath,
    seen,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
