/**
 * A one-line progress bar for terminals (redrawn in place with \r). Only used when the stream is a TTY;
 * otherwise progress goes out as JSON lines.
 */
export interface BarState {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  imagesPerSec: number;
  etaSeconds: number;
  effectiveRank?: number | null;
}

export function formatBar(s: BarState, width = 24): string {
  const frac = s.totalSteps > 0 ? Math.min(1, s.step / s.totalSteps) : 0;
  const filled = Math.round(frac * width);
  const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
  const rank = s.effectiveRank != null ? ` rank ${s.effectiveRank.toFixed(1)}` : '';
  return (
    `${bar} ${(frac * 100).toFixed(0).padStart(3)}% step ${s.step}/${s.totalSteps} ep ${s.epoch} ` +
    `loss ${s.loss.toFixed(3)}${rank} ${s.imagesPerSec.toFixed(0)} img/s ETA ${formatDuration(s.etaSeconds)}`
  );
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

export class ProgressBar {
  private lastDraw = 0;
  constructor(private readonly stream: NodeJS.WriteStream, private readonly minIntervalMs = 200) {}

  update(s: BarState, force = false): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < this.minIntervalMs) return;
    this.lastDraw = now;
    const line = formatBar(s);
    const cols = this.stream.columns ?? 120;
    this.stream.write(`\r${line.slice(0, cols - 1)}\x1b[K`);
  }

  /** Leave the bar's last state on screen and move to a new line. */
  done(): void {
    this.stream.write('\n');
  }
}
