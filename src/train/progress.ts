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

  constructor(private readonly total: number, start: number, private readonly printFreq: number, private readonly enabled = true) {
    this.current = start;
    this.lastLog = start;
    if (enabled && process.stderr.isTTY) {
      this.bar = new cliProgress.SingleBar({
        format: 'step {value}/{total} |{bar}| epoch {epoch} loss {loss} lr {lr} {ips} img/s ETA {eta_formatted}',
        stream: process.stderr,
        hideCursor: true,
        etaBuffer: 20,
      }, cliProgress.Presets.shades_classic);
      this.bar.start(total, start, { epoch: 0, loss: '-', lr: '-', ips: '-' });
    }
  }

  update(step: number, v: ProgressValues): void {
    if (!this.enabled) return;
    this.current = step;
    const payload = { epoch: v.epoch, loss: v.loss.toFixed(4), lr: v.lr.toPrecision(3), ips: v.imagesPerSec.toFixed(1) };
    if (this.bar) {
      this.bar.update(step, payload);
    } else if (step - this.lastLog >= this.printFreq || step === this.total) {
      this.lastLog = step;
      process.stderr.write(`step ${step}/${this.total} epoch ${payload.epoch} loss ${payload.loss} lr ${payload.lr} ${payload.ips} img/s\n`);
    }
  }

  log(line: string): void {
    if (!this.enabled) return;
    if (this.bar) {
      this.bar.stop();
      process.stderr.write(`${line}\n`);
      this.bar.start(this.total, this.current);
    } else {
      process.stderr.write(`${line}\n`);
    }
  }

  stop(): void { this.bar?.stop(); }
}
