// Progress: a live bar (step, loss, lr, images/s, ETA) on a terminal, plain log lines otherwise.
import cliProgress from 'cli-progress';

export interface ProgressValues {
  epoch: number;
  loss: number;
  lr: number;
  imagesPerSec: number;
}

export class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private lastLog = 0;
  private current: number;
  // What the bar's {epoch} {loss} {lr} {ips} show: restarting the bar (after a line written above it) without them
  // would print the placeholders literally. Blanks until the first step.
  private payload: Record<string, string | number> = { epoch: '-', loss: '-', lr: '-', ips: '-' };

  constructor(
    private readonly total: number,
    start: number,
    private readonly printFreq: number,
    private readonly enabled = true,
  ) {
    this.current = start;
    this.lastLog = start;
    if (enabled && process.stderr.isTTY) {
      this.bar = new cliProgress.SingleBar(
        {
          format: 'step {value}/{total} |{bar}| epoch {epoch} loss {loss} lr {lr} {ips} img/s ETA {eta_formatted}',
          stream: process.stderr,
          hideCursor: true,
          etaBuffer: 20,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, start, this.payload);
    }
  }

  update(step: number, v: ProgressValues): void {
    if (!this.enabled) return;
    this.current = step;
    const payload = {
      epoch: v.epoch,
      loss: v.loss.toFixed(4),
      lr: v.lr.toPrecision(3),
      ips: v.imagesPerSec.toFixed(1),
    };
    this.payload = payload;
    if (this.bar) {
      this.bar.update(step, payload);
    } else if (step - this.lastLog >= this.printFreq || step === this.total) {
      this.lastLog = step;
      process.stderr.write(
        `step ${step}/${this.total} epoch ${payload.epoch} loss ${payload.loss} lr ${payload.lr} ${payload.ips} img/s\n`,
      );
    }
  }

  log(line: string): void {
    if (!this.enabled) return;
    if (this.bar) {
      this.bar.stop();
      process.stderr.write(`${line}\n`);
      this.bar.start(this.total, this.current, this.payload);
    } else {
      process.stderr.write(`${line}\n`);
    }
  }

  stop(): void {
    this.bar?.stop();
  }
}
