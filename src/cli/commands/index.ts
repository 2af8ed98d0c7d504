// One file a command; each exports register(program).
import type { Command } from 'commander';
import { register as info } from './info.js';

export function registerCommands(program: Command): void {
  info(program);
}
