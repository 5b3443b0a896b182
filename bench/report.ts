import { cpus, totalmem } from "node:os";
import type { Figure } from "./stats.ts";

export function machine(): string {
  return `${cpus().length} × ${cpus()[0]?.model.trim() ?? "cpu"}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, ${process.platform} ${process.arch}, Node ${process.version}`;
}

export function table(figures: Figure[]): string {
  const rows = figures.map((f) => [f.section, f.name, `${f.value} ${f.unit}`, f.target ? `${f.target} ${f.unit}` : ""]);
  const head = ["section", "figure", "value", "target"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
  return [line(head), "| " + widths.map((w) => "-".repeat(w)).join(" | ") + " |", ...rows.map(line)].join("\n");
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

/** One bar per figure, scaled within its unit, with the target marked where there is one. */
export function svg(figures: Figure[], title: string): string {
  const rowH = 22;
  const labelW = 330;
  const barW = 360;
  const maxByUnit = new Map<string, number>();
  for (const f of figures) {
    const target = Number(f.target?.replace(/[^\d.]/g, "")) || 0;
    maxByUnit.set(f.unit, Math.max(maxByUnit.get(f.unit) ?? 0, f.value, target));
  }
  const bars = figures.map((f, i) => {
    const y = 40 + i * rowH;
    const max = maxByUnit.get(f.unit) || 1;
    const w = Math.max(1, (f.value / max) * barW);
    const target = Number(f.target?.replace(/[^\d.]/g, ""));
    const mark = f.target && Number.isFinite(target) ? `<line x1="${labelW + (target / max) * barW}" x2="${labelW + (target / max) * barW}" y1="${y - 2}" y2="${y + 16}" stroke="#d33" stroke-width="2"/>` : "";
    return `<text x="${labelW - 8}" y="${y + 12}" text-anchor="end" font-size="12">${esc(f.name)}</text><rect x="${labelW}" y="${y}" width="${w}" height="14" fill="#3b82f6"/>${mark}<text x="${labelW + w + 6}" y="${y + 12}" font-size="12">${f.value} ${esc(f.unit)}</text>`;
  });
  const height = 60 + figures.length * rowH;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${labelW + barW + 160}" height="${height}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/><text x="10" y="22" font-size="14" font-weight="bold">${esc(title)}</text>${bars.join("")}<text x="10" y="${height - 8}" font-size="11" fill="#d33">red line: target</text></svg>\n`;
}
