/** A progress line on stderr: redrawn in place on a terminal, one line per step otherwise. */
export class Progress {
  private last = 0;
  private readonly started = Date.now();

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {}

  update(done: number, note = ""): void {
    const now = Date.now();
    // Redraw a terminal at most 10 times a second; write a log line at most once a second.
    if (now - this.last < (this.out.isTTY ? 100 : 1000) && done < this.total && !note) return;
    this.last = now;
    const pct = this.total ? Math.floor((done / this.total) * 100) : 100;
    const width = 30;
    const bar = "#".repeat(Math.round((pct / 100) * width)).padEnd(width, ".");
    const mibps = done / 1048576 / Math.max((now - this.started) / 1000, 0.001);
    const line = `${this.label} [${bar}] ${pct}% ${(done / 1048576).toFixed(1)}/${(this.total / 1048576).toFixed(1)} MiB ${mibps.toFixed(1)} MiB/s${note ? " " + note : ""}`;
    this.out.write(this.out.isTTY ? `\r${line}` : `${line}\n`);
  }

  done(): void {
    if (this.out.isTTY) this.out.write("\n");
  }
}
