// moco sweep <data>: a grid of pre-training configs, one run directory each, and their table.
import type { Command } from 'commander';
import { parseGrid, readGridFile, sweep } from '../../train/index.js';
import { RUN_VIEWS } from '../../views/run-views.js';
import { addPretrainOptions, overridesFromFlags } from './pretrain-flags.js';
import { int } from './flag-numbers.js';

export function register(program: Command): void {
  addPretrainOptions(
    program
      .command('sweep')
      .description(
        'pre-train a grid of configs one after another on one dataset and budget, evaluate each (kNN; --linear: cached-feature linear probe) and write sweep.csv, sweep.json and sweep.md in --out. Rerunning the same command resumes: finished cells are not rerun. A cell is its full resolved config: when the settings a cell ran with (its config.json) differ from the ones this command resolves in anything but --out, --threads, --workers, --device, --print-freq, --keep-checkpoints or --save-every-steps, the sweep refuses before training, naming each changed setting; pass --rerun-changed to move those cells to --out/replaced/ and train them anew',
      )
      .argument('<data>', 'dataset, as moco pretrain'),
  )
    .option(
      '--grid <spec>',
      'the grid: space-separated key=v1,v2 of pretrain flags without the dashes, e.g. "moco-t=0.07,0.2 mlp=false,true"',
    )
    .option('--grid-file <file>', 'the grid as a YAML or JSON object of key: [values]')
    .option('--linear', 'also run the cached-feature linear probe on every cell')
    .option('--linear-epochs <n>', 'epochs of the linear probe (default 10)', (v: string) =>
      int('--linear-epochs', v, -Infinity),
    )
    .option(
      '--rerun-changed',
      'cells run before with other settings are moved to DIR/replaced/<cell>-<time> and trained anew (without it the sweep refuses, naming what changed)',
    )
    .option('--quiet', 'no progress lines')
    .action(async (data: string, f: Record<string, unknown>) => {
      if (Boolean(f.grid) === Boolean(f.gridFile))
        throw new Error(
          'moco sweep: give the grid either as --grid "key=v1,v2 …" or as --grid-file FILE (exactly one)',
        );
      const axes = f.grid ? parseGrid(f.grid as string) : readGridFile(f.gridFile as string);
      const { out, ...base } = overridesFromFlags(f);
      if (!out)
        throw new Error('moco sweep: --out DIR is required (the sweep directory; rerun with the same --out to resume)');
      const r = await sweep({
        data,
        base,
        axes,
        out,
        linearEpochs: f.linear ? ((f.linearEpochs as number | undefined) ?? 10) : 0,
        quiet: Boolean(f.quiet),
        rerunChanged: Boolean(f.rerunChanged),
        cellViews: RUN_VIEWS,
      });
      console.log(
        JSON.stringify({
          cells: r.rows.length,
          ran: r.ran,
          ...(r.replaced ? { replaced: r.replaced } : {}),
          ...(r.interrupted ? { interrupted: r.interrupted } : {}),
          ...r.files,
        }),
      );
    });
}
