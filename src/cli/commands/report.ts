// moco report RUN [RUN…] --out report.html: one self-contained HTML page of one run or several compared.
import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('report')
    .description(
      'write a self-contained HTML report (charts, config, checkpoints, images) of one run directory, or of several compared',
    )
    .argument('<runs...>', 'run directories of moco pretrain (its --out)')
    .option('--out <file>', 'the HTML file to write (default: <run>/report.html for one run, report.html for several)')
    .option('--title <text>', 'page title')
    .action(async (runs: string[], o: { out?: string; title?: string }) => {
      const { writeReport } = await import('../../views/report.js');
      const { join } = await import('node:path');
      const out = o.out ?? (runs.length === 1 ? join(runs[0]!, 'report.html') : 'report.html');
      const written = writeReport(runs, out, { title: o.title });
      console.log(
        JSON.stringify({
          out,
          runs: written.map((r) => ({
            name: r.name,
            dir: r.dir,
            state: r.info?.state ?? null,
            steps: r.summary.stepsDone,
          })),
        }),
      );
    });
}
