import { Agent as HttpAgent } from "node:http";
import { Duplex } from "node:stream";
import type { DockerEngine } from "../docker/engine.ts";
import type { ExecIo } from "../docker/exec.ts";

/** Where the host's static busybox is mounted, read-only, in every container of a job with ports. */
export const RELAY_BUSYBOX_PATH = "/.gridx/busybox";

/** How long an exec's exit code is waited for after its output ended. */
const EXIT_WAIT_MS = 5000;
const EXIT_POLL_MS = 50;
/** Keep-alive relays kept per port, unused, for the next request. */
const FREE_RELAYS_PER_PORT = 8;
/** An unused relay (an nc process in the job's container, counted in its pids) is ended after this long idle. */
const IDLE_RELAY_MS = 60_000;

/** A process run in a container with `docker exec`. */
export interface ExecProcess {
  io: ExecIo;
  resize(cols: number, rows: number): Promise<void>;
  /** Its exit code once it has ended (null when it cannot be had). */
  exitCode(): Promise<number | null>;
}

/** How the tunnel reaches into a container; the Docker one below, or a fake in tests. */
export interface ContainerReach {
  exec(container: string, argv: string[], tty: boolean): Promise<ExecProcess>;
  /** A keep-alive HTTP agent whose connections reach `port` on the container's loopback. */
  agent(container: string, port: number): HttpAgent;
  /** The container is gone: its relays are dropped. */
  forget(container: string): void;
}

/** Raised as a relay's error when nothing listens on the port: the HTTP client then fails with it. */
export class PortUnreachable extends Error {
  readonly code = "ECONNREFUSED";

  constructor(readonly port: number) {
    super(`nothing listens on port ${port} yet`);
  }
}

/**
 * Reaches containers through the Engine API, never through a network: a port by a relay,
 * `docker exec` of busybox's `nc 127.0.0.1 PORT` in the container (which keeps NetworkMode
 * none; its loopback is its own), and a process by `docker exec` of its argv.
 */
export class DockerReach implements ContainerReach {
  private readonly agents = new Map<string, Map<number, HttpAgent>>();

  constructor(private readonly docker: DockerEngine) {}

  async exec(container: string, argv: string[], tty: boolean): Promise<ExecProcess> {
    const id = await this.docker.createExec(container, { Cmd: argv, Tty: tty });
    const io = await this.docker.startExec(id, tty);
    return {
      io,
      resize: (cols, rows) => this.docker.resizeExec(id, cols, rows),
      exitCode: async () => {
        // The output can end a moment before the engine records the exit.
        for (const deadline = Date.now() + EXIT_WAIT_MS; Date.now() < deadline; await new Promise((r) => setTimeout(r, EXIT_POLL_MS))) {
          const state = await this.docker.inspectExec(id).catch(() => null);
          if (!state) return null;
          if (!state.Running) return state.ExitCode;
        }
        return null;
      },
    };
  }

  agent(container: string, port: number): HttpAgent {
    let ports = this.agents.get(container);
    if (!ports) this.agents.set(container, (ports = new Map()));
    let agent = ports.get(port);
    if (!agent) {
      agent = new HttpAgent({ keepAlive: true, maxFreeSockets: FREE_RELAYS_PER_PORT, timeout: IDLE_RELAY_MS });
      // The callback form: a relay is an exec to create and start first.
      agent.createConnection = ((_opts: unknown, done: (err: Error | null, socket?: Duplex) => void) => {
        this.exec(container, [RELAY_BUSYBOX_PATH, "nc", "127.0.0.1", String(port)], false).then(
          (proc) => done(null, new RelaySocket(proc.io, port)),
          (err: Error) => done(err),
        );
        return undefined;
      }) as unknown as HttpAgent["createConnection"];
      ports.set(port, agent);
    }
    return agent;
  }

  forget(container: string): void {
    for (const agent of this.agents.get(container)?.values() ?? []) agent.destroy();
    this.agents.delete(container);
  }
}

/** The most of a relay's stderr kept, to tell "nothing listens" from other failures. */
const RELAY_STDERR_BYTES = 2048;

/**
 * A relay exec as the socket an HTTP client or `ws` speaks over: stdin is what is written,
 * stdout what is read. A relay whose nc could not connect (it says so on stderr and exits
 * before any byte) fails with PortUnreachable rather than a bare end.
 */
class RelaySocket extends Duplex {
  private got = false;
  private stderr = "";

  constructor(
    private readonly io: ExecIo,
    private readonly port: number,
  ) {
    super({ allowHalfOpen: false });
    let open = 2;
    const ended = () => {
      if (--open > 0) return;
      if (!this.got && /refused|can't connect/i.test(this.stderr)) this.destroy(new PortUnreachable(this.port));
      else this.push(null);
    };
    io.stdout.on("data", (chunk: Buffer) => {
      this.got = true;
      if (!this.push(chunk)) io.stdout.pause();
    });
    io.stderr.on("data", (chunk: Buffer) => {
      if (this.stderr.length < RELAY_STDERR_BYTES) this.stderr += chunk.toString("utf8", 0, RELAY_STDERR_BYTES);
    });
    io.stdout.on("end", ended);
    io.stderr.on("end", ended);
    io.stdin.on("error", (err) => this.destroy(err));
    io.stdin.on("timeout", () => this.emit("timeout"));
  }

  override _read(): void {
    this.io.stdout.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.io.stdin.write(chunk, done);
  }

  override _final(done: () => void): void {
    this.io.stdin.end();
    done();
  }

  override _destroy(err: Error | null, done: (err: Error | null) => void): void {
    this.io.stdin.destroy();
    done(err);
  }

  // What node's HTTP client and agent call on a socket.
  setTimeout(ms: number, onTimeout?: () => void): this {
    this.io.stdin.setTimeout(ms);
    if (onTimeout) this.once("timeout", onTimeout);
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  setNoDelay(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }
}
