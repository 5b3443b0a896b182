import { request } from "node:http";
import type { Socket } from "node:net";
import { PassThrough, type Readable } from "node:stream";
import type { EngineAddress } from "./engine.ts";
import { FrameDemuxer } from "./frames.ts";

/** What `POST /containers/{id}/exec` is given; no `User`, so the process runs as the container's user (the job's). */
export interface ExecCreate {
  Cmd: string[];
  Tty: boolean;
}

/** A process started by `docker exec`, attached: stdin in, stdout and stderr out (all of it on stdout under a TTY). */
export interface ExecIo {
  /** The hijacked connection: write stdin to it, `end()` it for EOF, `destroy()` it to cut the process off. */
  stdin: Socket;
  stdout: Readable;
  stderr: Readable;
}

/**
 * Starts an exec with its connection hijacked (`Connection: Upgrade`, `Upgrade: tcp`): the
 * engine answers 101 and the socket carries the process's stdin one way and its output the
 * other, multiplexed as attach's is unless under a TTY. Half-closing the socket ends stdin.
 * A reader that stops reading stops the socket, so the process's writes wait for it.
 */
export function startExecHijacked(address: EngineAddress, path: string, tty: boolean): Promise<ExecIo> {
  return new Promise((resolve, reject) => {
    const req = request({ ...address, method: "POST", path, headers: { "content-type": "application/json", connection: "Upgrade", upgrade: "tcp" }, agent: false });
    req.on("upgrade", (_res, socket: Socket, head: Buffer) => {
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      const demux = new FrameDemuxer((stream, bytes) => (stream === "stdout" ? stdout : stderr).write(bytes));
      const take = (chunk: Buffer) => {
        if (tty) stdout.write(chunk);
        else demux.write(chunk);
        if (stdout.writableNeedDrain || stderr.writableNeedDrain) socket.pause();
      };
      const resume = () => {
        if (!stdout.writableNeedDrain && !stderr.writableNeedDrain) socket.resume();
      };
      stdout.on("drain", resume);
      stderr.on("drain", resume);
      if (head.length) take(head);
      socket.on("data", take);
      const finish = () => {
        stdout.end();
        stderr.end();
      };
      socket.on("end", finish);
      socket.on("close", finish);
      // An error on the connection ends the output as a close would; whoever holds the socket sees the error itself.
      socket.on("error", finish);
      resolve({ stdin: socket, stdout, stderr });
    });
    req.on("response", (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => reject(new Error(`the Docker engine did not start the exec (HTTP ${res.statusCode}): ${body.trim().slice(0, 500)}`)));
    });
    req.on("error", reject);
    req.end(JSON.stringify({ Detach: false, Tty: tty }));
  });
}
