/**
 * Test-only fault injection into the coordinator's D1 binding. It exists only where the
 * `GRIDX_FAULTS` var is "on" (the fault suite sets it; wrangler.toml never does), so a
 * production coordinator talks to D1 directly.
 */
export interface FaultPlan {
  /** Fail this many of the next D1 calls whose SQL contains `match` (every call if omitted). */
  failNext: number;
  match?: string;
}

export const FAULT_MESSAGE = "D1_ERROR: injected fault (GRIDX_FAULTS)";

export function faultsEnabled(env: { GRIDX_FAULTS?: string }): boolean {
  return env.GRIDX_FAULTS === "on";
}

/** The plan in force, shared by every statement the wrapped binding hands out. */
export class Faults {
  private plan: FaultPlan = { failNext: 0 };
  /** Calls failed so far. */
  injected = 0;

  set(plan: FaultPlan): void {
    this.plan = { ...plan };
  }

  /** Throws instead of running when the plan says this call fails. */
  check(sqls: readonly string[]): void {
    if (this.plan.failNext <= 0) return;
    const match = this.plan.match;
    if (match !== undefined && !sqls.some((s) => s.includes(match))) return;
    this.plan.failNext--;
    this.injected++;
    throw new Error(FAULT_MESSAGE);
  }
}

class FaultyStatement {
  constructor(
    readonly inner: D1PreparedStatement,
    readonly sql: string,
    private readonly faults: Faults,
  ) {}

  bind(...values: unknown[]): FaultyStatement {
    return new FaultyStatement(this.inner.bind(...values), this.sql, this.faults);
  }

  async first(column?: string): Promise<unknown> {
    this.faults.check([this.sql]);
    return column === undefined ? this.inner.first() : this.inner.first(column);
  }

  async run(): Promise<D1Result> {
    this.faults.check([this.sql]);
    return this.inner.run();
  }

  async all(): Promise<D1Result> {
    this.faults.check([this.sql]);
    return this.inner.all();
  }

  async raw(options?: { columnNames?: boolean }): Promise<unknown[]> {
    this.faults.check([this.sql]);
    return options?.columnNames ? this.inner.raw({ columnNames: true }) : this.inner.raw();
  }
}

/** A D1 binding whose calls fail as `faults` says; statements it hands out batch through it. */
export function faultyD1(d1: D1Database, faults: Faults): D1Database {
  const wrapped = {
    prepare: (sql: string) => new FaultyStatement(d1.prepare(sql), sql, faults),
    batch: async (statements: FaultyStatement[]) => {
      faults.check(statements.map((s) => s.sql));
      return d1.batch(statements.map((s) => s.inner));
    },
    exec: async (sql: string) => {
      faults.check([sql]);
      return d1.exec(sql);
    },
    withSession: () => wrapped,
    dump: () => d1.dump(),
  };
  return wrapped as unknown as D1Database;
}
