import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { UpgradeOrder, UpgradeReport } from "../../../protocol/index.ts";
import { bundlePath, confirmed, installed, stateFile, unreportedRollback, type BundleState } from "../../bin/bundle-choice.mjs";
import type { Logger } from "../logger.ts";
import { downloadFile } from "../transfer/download.ts";
import type { HttpOptions } from "../transfer/http.ts";

/** What the agent does with bundles, as an interface so its tests can fake it. */
export interface UpgradeSteps {
  /** Downloads the ordered bundle into the state dir and checks its size and SHA-256; throws saying why it is refused. */
  fetch(order: UpgradeOrder): Promise<void>;
  /** Records the fetched bundle as the one the launcher tries at the next start. */
  install(order: UpgradeOrder): Promise<void>;
  /** A hello was accepted: this version, if on trial, becomes current; returns a rollback not yet told to the control plane. */
  connected(): Promise<UpgradeReport | null>;
}

/**
 * Bundles in `<state dir>/bundles/<version>/gridx-agent.mjs`, and the record the launcher
 * (agent/bin/gridx-agent.mjs) reads to choose one. Only the current, previous and pending
 * bundles are kept.
 */
export class BundleStore implements UpgradeSteps {
  constructor(
    private readonly opts: { stateDir: string; version: string; confirmS: number; http: HttpOptions; log: Logger },
  ) {}

  async fetch(order: UpgradeOrder): Promise<void> {
    const path = bundlePath(this.opts.stateDir, order.version);
    await mkdir(dirname(path), { recursive: true });
    const partial = `${path}.part`;
    try {
      const got = await downloadFile(order.url, partial, { size: order.size, what: `agent bundle ${order.version}`, http: this.opts.http });
      if (got.sha256 !== order.sha256) throw new Error(`agent bundle ${order.version}: its SHA-256 is ${got.sha256}, the control plane holds ${order.sha256}; refused, staying on ${this.opts.version}`);
      await rename(partial, path);
    } finally {
      await rm(partial, { force: true });
    }
  }

  async install(order: UpgradeOrder): Promise<void> {
    await this.write(installed(await this.read(), order.version, bundlePath(this.opts.stateDir, order.version), this.opts.confirmS));
  }

  async connected(): Promise<UpgradeReport | null> {
    let state = await this.read();
    const promoted = confirmed(state, this.opts.version);
    if (promoted) {
      state = promoted;
      await this.write(state);
      this.opts.log.info("upgraded: this bundle connected, and is the current one now", { version: this.opts.version });
      await this.prune(state);
    }
    const told = unreportedRollback(state);
    if (!told) return null;
    await this.write(told.state);
    return { version: told.rollback.version, state: "rolled_back", reason: told.rollback.reason };
  }

  private async read(): Promise<BundleState | null> {
    try {
      return JSON.parse(await readFile(stateFile(this.opts.stateDir), "utf8")) as BundleState;
    } catch {
      return null;
    }
  }

  /** Written whole and renamed, so the launcher never reads half a record. */
  private async write(state: BundleState): Promise<void> {
    const file = stateFile(this.opts.stateDir);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(`${file}.tmp`, JSON.stringify(state, null, 2));
    await rename(`${file}.tmp`, file);
  }

  private async prune(state: BundleState): Promise<void> {
    const keep = new Set([state.current?.version, state.previous?.version, state.pending?.version]);
    const root = dirname(stateFile(this.opts.stateDir));
    for (const entry of await readdir(root, { withFileTypes: true }).catch(() => [])) {
      if (entry.isDirectory() && !keep.has(entry.name)) await rm(join(root, entry.name), { recursive: true, force: true }).catch((err: unknown) => this.opts.log.warn("could not remove an old bundle", { err, version: entry.name }));
    }
  }
}
