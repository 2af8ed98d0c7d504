import type { Command } from 'commander';
import { buildInfo, cuda, getNumThreads } from '../../torch/index.js';

export function register(program: Command): void {
  program
    .command('info')
    .description('print the libtorch build, threads and devices as JSON')
    .action(() => {
      const b = buildInfo();
      console.log(
        JSON.stringify({
          torch: b.torch,
          threads: getNumThreads(),
          cuda: cuda.isAvailable(),
          cudaDevices: cuda.deviceCount(),
          cxx11Abi: b.cxx11Abi,
        }),
      );
    });
}
