// One file a command; each exports register(program).
import type { Command } from 'commander';
import { register as info } from './info.js';
import { register as pretrain } from './pretrain.js';
import { register as convert } from './convert.js';
import { register as exportCmd } from './export.js';
import { register as embed } from './embed.js';
import { register as augmentPreview } from './augment-preview.js';
import { register as lincls } from './lincls.js';
import { register as finetune } from './finetune.js';
import { register as knn } from './knn.js';
import { register as search } from './search.js';
import { register as cache } from './cache.js';
import { register as serve } from './serve.js';
import { register as report } from './report.js';
import { register as indexImages } from './index-images.js';
import { register as dedup } from './dedup.js';
import { register as cluster } from './cluster.js';
import { register as select } from './select.js';
import { register as sweep } from './sweep.js';

export function registerCommands(program: Command): void {
  info(program);
  pretrain(program);
  convert(program);
  exportCmd(program);
  embed(program);
  augmentPreview(program);
  lincls(program);
  finetune(program);
  knn(program);
  search(program);
  cache(program);
  serve(program);
  report(program);
  indexImages(program);
  dedup(program);
  cluster(program);
  select(program);
  sweep(program);
}
