/**
 * Where the service writes operational lines. Lines never contain session IDs, store keys,
 * API keys, secrets or request paths (paths carry session IDs).
 */
export interface ServiceLogger {
  info(line: string): void;
  warn(line: string): void;
  error(line: string): void;
}

/** Writes every line to stderr, prefixed with its level; stdout is kept for the `listening on` line. */
export const stderrLogger: ServiceLogger = {
  info: (line) => process.stderr.write(`elastic-session: ${line}\n`),
  warn: (line) => process.stderr.write(`elastic-session: warning: ${line}\n`),
  error: (line) => process.stderr.write(`elastic-session: error: ${line}\n`),
};

export const silentLogger: ServiceLogger = { info: () => {}, warn: () => {}, error: () => {} };

/**
 * Logs a repeated error at most once per `intervalMs` per kind, with a count of what was
 * suppressed, so a store outage under load does not flood stderr.
 */
export function throttled(log: ServiceLogger, intervalMs = 5000): (kind: string, line: string) => void {
  const last = new Map<string, { at: number; suppressed: number }>();
  return (kind, line) => {
    const now = performance.now();
    const entry = last.get(kind);
    if (entry && now - entry.at < intervalMs) {
      entry.suppressed++;
      return;
    }
    const suppressed = entry?.suppressed ?? 0;
    last.set(kind, { at: now, suppressed: 0 });
    log.error(suppressed > 0 ? `${line} (${suppressed} more like it suppressed)` : line);
  };
}
