#!/usr/bin/env node
// The `moco` command: argument parsing only; every command is a thin call into the library.
import { Command } from 'commander';
import { registerCommands } from './commands/index.js';

const program = new Command();
program
  .name('moco')
  .description('MoCo v2 self-supervised pre-training, evaluation and deployment on libtorch')
  .showHelpAfterError()
  .configureOutput({ outputError: (s, write) => write(s) });
registerCommands(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  const err = e as Error;
  process.stderr.write(`moco: ${err.message}\n`);
  if (process.env.MOCO_DEBUG) process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
