#!/usr/bin/env node
// The `moco` command: argument parsing only; every command is a thin call into the library.
import { Command } from 'commander';
import { registerCommands } from './commands/index.js';
import { packageVersion } from '../train/run-log.js';

const program = new Command();
program
  .name('moco')
  .description('MoCo v2 self-supervised pre-training, evaluation and deployment on libtorch')
  .version(packageVersion())
  .configureOutput({
    // A mistyped flag gets the error and one hint line, not the whole help: commander's suggestion
    // ("(Did you mean --epochs?)", on its own line) is joined with the showHelpAfterError text written next.
    outputError: (s, write) => write(s.replace(/\n\((Did you mean [^\n]*\?)\)\n$/, '\n$1 ')),
  });
registerCommands(program);
// Each command points at its own help; set after registration because commands copy the setting when created.
const pointAtHelp = (cmd: Command, path: string): void => {
  cmd.showHelpAfterError(`See ${path} --help`);
  for (const sub of cmd.commands) pointAtHelp(sub, `${path} ${sub.name()}`);
};
pointAtHelp(program, program.name());

program.parseAsync(process.argv).catch((e: unknown) => {
  const err = e as Error;
  // Some commands already name themselves ("moco sweep: …"); one prefix is enough.
  process.stderr.write(/^moco\b/.test(err.message) ? `${err.message}\n` : `moco: ${err.message}\n`);
  if (process.env.MOCO_DEBUG) process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
