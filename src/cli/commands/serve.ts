import type { Command } from 'commander';
import { addEmbedOptions, feature, type EmbedFlags } from './eval-common.js';
import { int } from './flag-numbers.js';

interface ServeCliOpts extends EmbedFlags {
  pretrained: string;
  index?: string;
  db?: string;
  port: string;
  host: string;
  batch: string;
  batchDelay: string;
  queue: string;
  maxLoopDelay: string;
  bodyLimit: string;
  maxPixels: string;
  threads?: string;
  engine: string;
  log: string;
  allowedHosts?: string;
  drainTimeout: string;
  requestTimeout: string;
  absolutePaths: boolean;
}

export function register(program: Command): void {
  const cmd = program
    .command('serve')
    .description(
      'HTTP service: /v1/embed, /v1/search, /v1/info, /healthz, /readyz, /openapi.json, and the browser page at /',
    );
  // --batch and --threads mean the service's own (requests a forward, the engine's threads); no --flip (per-request pipeline).
  addEmbedOptions(cmd, {
    required: true,
    pretrained: 'checkpoint (run dir, .safetensors, .pth, .pth.tar) or an exported .onnx model',
    prefix: '',
    batch: false,
    threads: false,
    flip: false,
    crops: false,
  })
    .option(
      '--index <file>',
      'embedding file from `moco embed` (.npy + .paths.jsonl, .safetensors, .jsonl) for /v1/search (exact search)',
    )
    .option('--db <dir>', 'LanceDB collection of `moco index` for /v1/search (ANN search once it is indexed)')
    .option('--port <n>', 'TCP port (0: any free port)', '8080')
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--batch <n>', 'most images a forward pass (1: no batching across requests)', '32')
    .option('--batch-delay <ms>', 'longest wait before a partial batch runs', '5')
    .option('--queue <n>', 'most images waiting for the model; beyond, 503 with Retry-After', '256')
    .option('--max-loop-delay <ms>', 'event-loop delay beyond which requests get 503 (0: off)', '1000')
    .option('--body-limit <mb>', 'largest request body, MiB: a whole multipart request, and each of its files', '16')
    .option('--max-pixels <n>', 'most pixels an image may have (checked before decoding)', '50000000')
    .option(
      '--threads <n>',
      "the engine's intra-op threads (default: libtorch's, the physical cores; onnxruntime's, all cores)",
    )
    .option(
      '--engine <engine>',
      'what runs a checkpoint: libtorch (in a worker thread), onnxruntime (its ONNX export; onnxruntime-node where installed, else onnxruntime-web), or auto: onnxruntime-node where installed, else libtorch; an .onnx model always runs on onnxruntime',
      'auto',
    )
    .option('--log <level>', 'request log level (fatal, error, warn, info, debug) or off', 'warn')
    .option(
      '--request-timeout <s>',
      'longest time a request body may take to arrive, seconds (408 and the connection closed beyond)',
      '30',
    )
    .option(
      '--drain-timeout <s>',
      'on SIGTERM/SIGINT, seconds to let open requests finish before every connection is closed',
      '10',
    )
    .option(
      '--absolute-paths',
      "report the server's absolute paths (search hits, /v1/info); default: image paths relative to the indexed folder, files by name",
      false,
    )
    .option(
      '--allowed-hosts <names>',
      'comma-separated host names the service answers besides IP addresses and localhost (others get 403: DNS-rebinding protection)',
    )
    .action(async (o: ServeCliOpts) => {
      const feat = feature(o.feature ?? 'backbone');
      if (feat === 'regions')
        throw new Error('moco serve: --feature must be backbone or head (the ONNX export has no region descriptor)');
      const port = Number(o.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new Error(`--port must be an integer in 0…65535, got '${o.port}'`);
      const bodyMb = Number(o.bodyLimit);
      if (!(bodyMb > 0)) throw new Error(`--body-limit must be a positive number of MiB, got '${o.bodyLimit}'`);
      const delay = Number(o.batchDelay);
      if (!Number.isFinite(delay) || delay < 0)
        throw new Error(`--batch-delay must be a number of milliseconds ≥ 0, got '${o.batchDelay}'`);
      const requestS = Number(o.requestTimeout);
      if (!(requestS > 0))
        throw new Error(`--request-timeout must be a positive number of seconds, got '${o.requestTimeout}'`);
      const drainS = Number(o.drainTimeout);
      if (!(drainS >= 0)) throw new Error(`--drain-timeout must be a number of seconds ≥ 0, got '${o.drainTimeout}'`);
      if (o.engine !== 'libtorch' && o.engine !== 'onnxruntime' && o.engine !== 'auto')
        throw new Error(`--engine must be auto, libtorch or onnxruntime, got '${o.engine}'`);
      const isOnnx = o.pretrained.toLowerCase().endsWith('.onnx');
      const { buildServer } = await import('../../serve/index.js');
      const app = buildServer({
        pretrained: o.pretrained,
        index: o.index,
        db: o.db,
        feature: feat,
        engine: isOnnx ? undefined : (o.engine as 'auto' | 'libtorch' | 'onnxruntime'),
        maxBatch: int('--batch', o.batch),
        maxDelayMs: delay,
        maxQueue: int('--queue', o.queue),
        bodyLimit: Math.round(bodyMb * 2 ** 20),
        maxPixels: int('--max-pixels', o.maxPixels),
        maxEventLoopDelayMs: int('--max-loop-delay', o.maxLoopDelay, 0),
        threads: o.threads ? int('--threads', o.threads) : undefined,
        logLevel: o.log === 'off' ? false : o.log,
        requestTimeoutMs: Math.round(requestS * 1000),
        absolutePaths: o.absolutePaths,
        allowedHosts: [
          o.host,
          ...(o.allowedHosts ?? '')
            .split(',')
            .map((h) => h.trim())
            .filter(Boolean),
        ],
      });
      let stopping = false;
      const stop = (sig: string): void => {
        if (stopping) return;
        stopping = true;
        console.error(
          `moco serve: ${sig}: draining (no new connections, finishing queued work; connections still open after ${drainS} s are closed)`,
        );
        app.moco.drain({ timeoutMs: Math.round(drainS * 1000) }).then(
          () => {
            console.error('moco serve: closed');
            process.exit(0);
          },
          (e: unknown) => {
            console.error(`moco serve: close failed: ${(e as Error).message}`);
            process.exit(1);
          },
        );
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
      const address = await app.listen({ port, host: o.host });
      console.error(`moco serve: listening on ${address} (loading ${o.pretrained})`);
      try {
        await app.moco.loaded;
      } catch (e) {
        await app.close();
        throw e;
      }
      const m = app.moco.model!.info;
      const b = app.moco.backend;
      console.error(
        `moco serve: ready: ${m.arch} on ${m.engine}, ${m.dim}-d ${m.feature} vectors, ${m.preprocessing.size}-px input${b ? `; index ${b.source} (${b.size} rows)` : '; no index'}; page at ${address}/`,
      );
    });
}
