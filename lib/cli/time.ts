/**
 * One way to show times to people: local time, relative when recent ("3 min ago"), and durations
 * as `2m13s` / `1h05m` / `2d03h`. JSON output keeps ISO 8601 (UTC) instead.
 */

/** `42s`, `2m13s`, `1h05m`, `2d03h`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) {
    return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
  }
  return `${Math.floor(s / 86400)}d${String(Math.floor(s / 3600) % 24).padStart(2, "0")}h`;
}

/** Slurm's elapsed time (`M:SS`, `H:MM:SS`, `D-HH:MM:SS`) in milliseconds, or undefined. */
export function parseSlurmDuration(text: string | null | undefined): number | undefined {
  if (!text) return undefined;
  const m = /^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$/.exec(text.trim());
  if (!m) return undefined;
  const [d, h, mi, s] = [m[1], m[2], m[3], m[4]].map((x) => Number(x ?? 0));
  return (((d * 24 + h) * 60 + mi) * 60 + s) * 1000;
}

/** `2026-11-30 14:02` in local time. */
export function localTime(iso: string): string {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return iso;
  const p = (n: number) => String(n).padStart(2, "0");
  return `${t.getFullYear()}-${p(t.getMonth() + 1)}-${p(t.getDate())} ` +
    `${p(t.getHours())}:${p(t.getMinutes())}`;
}

/** `12 s ago`, `3 min ago`, `5 h ago` within a day; otherwise the local time. */
export function relativeTime(iso: string, now: number = Date.now()): string {
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return iso;
  const s = Math.round((now - t) / 1000);
  if (s < 0) return localTime(iso);
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return localTime(iso);
}
