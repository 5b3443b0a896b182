import { DurableObject } from "cloudflare:workers";
import type { JobEvent } from "../../../protocol/index.ts";
import { createDb, type Db } from "../db/client.ts";
import { eventsAfter, lastEventId } from "../db/events.ts";
import type { Bindings } from "../env.ts";
import { errorText } from "../errors.ts";
import { settingsOf, type Settings } from "../settings.ts";
import { FollowerSet, newWriter, type Follower } from "../streams/followers.ts";
import { FOLLOWER_MAX_QUEUED_BYTES, SSE_HEADERS, type SseEvent } from "../streams/sse.ts";

/** Events read from D1 per query. */
const EVENTS_PER_READ = 500;

interface EventFollower extends Follower {
  /** Only this job's events, when set. */
  job: string | null;
  cursor: number;
  pending: JobEvent[];
}

/**
 * One per project (`idFromName(project)`): the followers of its job events. Events are rows
 * (`job_events`, written by triggers with every status change); when told that some were
 * written, the hub reads what is new once and pushes it to every follower, so followers cost no
 * D1 reads of their own after they caught up, however many there are. Ids are commit order, so
 * a follower that reads from its cursor and then takes pushes with larger ids sees each event
 * once, in order.
 */
export class EventHub extends DurableObject<Bindings> {
  private readonly db: Db;
  private readonly settings: Settings;
  private readonly followers: FollowerSet<EventFollower>;
  private project: string | null = null;
  /** The newest id read for the followers; null while there are none. */
  private head: number | null = null;
  private reading: Promise<void> | null = null;
  private readAgain = false;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.db = createDb(env.DB);
    this.settings = settingsOf(env);
    this.followers = new FollowerSet<EventFollower>(this.settings, () => this.readNew(), () => `event hub ${this.project}`);
  }

  /** Events of the project were written. Costs nothing without followers. */
  async written(project: string): Promise<void> {
    this.project = project;
    if (this.followers.size === 0) return;
    await this.readNew();
  }

  /** A follower: `GET /follow?project=&job=&after=` answers a stream of `job` events. */
  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const project = url.searchParams.get("project");
    if (!project) return new Response("project is required", { status: 400 });
    this.project = project;
    const f: EventFollower = {
      out: newWriter(),
      job: url.searchParams.get("job"),
      cursor: Number(url.searchParams.get("after") ?? 0) || 0,
      pending: [],
      catchingUp: true,
      startedAt: Date.now(),
      lastWriteAt: Date.now(),
      resumeAfter: () => String(f.cursor),
    };
    this.followers.add(f);
    void this.catchUp(f).catch((err) => {
      console.error(`event hub ${project}: a follower's catch-up failed`, errorText(err));
      this.followers.drop(f);
    });
    return new Response(f.out.readable, { headers: SSE_HEADERS });
  }

  private async catchUp(f: EventFollower): Promise<void> {
    const project = this.project!;
    // Known before the follower reads, so whatever it misses is newer and comes by push.
    this.head ??= await lastEventId(this.db, project);
    for (;;) {
      const events = await eventsAfter(this.db, project, f.cursor, { job: f.job ?? undefined, limit: EVENTS_PER_READ });
      this.write(f, events);
      if (this.followers.sweepClosed(f)) return;
      if (events.length < EVENTS_PER_READ) break;
    }
    f.catchingUp = false;
    this.write(f, f.pending.splice(0));
  }

  /** Reads what is new once for all followers; calls meanwhile fold into one more read. */
  private readNew(): Promise<void> {
    if (this.reading) {
      this.readAgain = true;
      return this.reading;
    }
    this.reading = (async () => {
      try {
        do {
          this.readAgain = false;
          await this.readOnce();
        } while (this.readAgain);
      } finally {
        this.reading = null;
      }
    })();
    return this.reading;
  }

  private async readOnce(): Promise<void> {
    const project = this.project;
    if (!project || this.followers.size === 0) {
      this.head = null;
      return;
    }
    this.head ??= await lastEventId(this.db, project);
    for (;;) {
      const events = await eventsAfter(this.db, project, this.head, { limit: EVENTS_PER_READ });
      if (events.length === 0) return;
      this.head = events.at(-1)!.id;
      for (const f of this.followers.all) {
        const mine = f.job ? events.filter((e) => e.job_id === f.job) : events;
        if (!f.catchingUp) this.write(f, mine);
        else if (f.pending.push(...mine) > FOLLOWER_MAX_QUEUED_BYTES / 256) this.followers.drop(f);
      }
      if (events.length < EVENTS_PER_READ) return;
    }
  }

  private write(f: EventFollower, events: readonly JobEvent[]): void {
    const out: SseEvent[] = [];
    for (const e of events) {
      if (e.id <= f.cursor) continue;
      out.push({ event: "job", id: String(e.id), data: JSON.stringify(e) });
      f.cursor = e.id;
    }
    f.out.sendAll(out);
    if (events.length) f.lastWriteAt = Date.now();
    this.followers.sweepClosed(f);
  }
}

/** The event hub of one project. */
export function eventHubOf(env: Bindings, project: string): DurableObjectStub<EventHub> {
  const ns = env.EVENT_HUB as unknown as DurableObjectNamespace<EventHub>;
  return ns.get(ns.idFromName(project));
}
