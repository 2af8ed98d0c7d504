// One file a command; each exports register(program).
import type { Command } from 'commander';
import { register as info } from './info.js';
import { register as convert } from './convert.js';
import { register as exportCmd } from './export.js';

export function registerCommands(program: Command): void {
  info(program);
  convert(program);
  exportCmd(program);
}
