// What `buildServer` is given, and the request limits its defaults resolve to.
import type { ServeEngine, ServeFeature } from './model.js';

export interface ServeOptions {
  /** Checkpoint (file or run directory, any format `moco embed` reads) or an exported `.onnx` model. */
  pretrained: string;
  /** Embedding file from `moco embed` searched exactly by /v1/search. */
  index?: string;
  /** LanceDB collection (directory or URI) of `moco index`, searched instead of `index`. */
  db?: string;
  /** Backbone (default) or head features, for checkpoints. */
  feature?: ServeFeature;
  /**
   * What runs a checkpoint: libtorch in a worker thread, onnxruntime on its ONNX export, or 'auto' (default:
   * onnxruntime-node where installed, else libtorch).
   */
  engine?: ServeEngine;
  /** Most images a forward pass; 1 turns batching off. Default 32. */
  maxBatch?: number;
  /** Longest wait before a partial batch is flushed, ms; default 5. */
  maxDelayMs?: number;
  /** Most images waiting for the model before requests get 503; default 256. */
  maxQueue?: number;
  /** Largest request body, bytes (413 beyond), a whole multipart request included; default 16 MiB. */
  bodyLimit?: number;
  /** Most pixels an image may have, checked from its header before decoding (413 beyond); default 50 M. */
  maxPixels?: number;
  /** Most files in one multipart request; default 64. */
  maxFiles?: number;
  /**
   * Event-loop delay beyond which requests get 503 with Retry-After (@fastify/under-pressure), ms; default 0
   * (off): the bounded queue is the back-pressure for embedding work, which never runs on the loop.
   */
  maxEventLoopDelayMs?: number;
  /** The engine's intra-op threads; default the engine's. */
  threads?: number;
  /** fastify's logger (pino) level, or false (default) for none. */
  logLevel?: string | false;
  /** Folder of the browser page; default the package's src/views/web. */
  webRoot?: string;
  /**
   * Host names (the `Host` header without its port) the service answers besides IP addresses and `localhost`;
   * any other gets 403, so that a page on another site that rebinds its DNS name to this address cannot read the
   * service. Default none.
   */
  allowedHosts?: readonly string[];
  /**
   * Longest time a request's body may take to arrive, ms: a slower one gets 408 and its connection is closed, so
   * trickling clients cannot hold connections and buffers open. Default 30 s.
   */
  requestTimeoutMs?: number;
  /**
   * Report absolute server paths (image paths in search hits, the model's and index's files in /v1/info). Default
   * false: image paths are relative to the index's root folder (the folder that was indexed,
   * {@link SearchBackend.root}) and files are named without their folder, so that clients learn nothing of the
   * server's file system.
   */
  absolutePaths?: boolean;
}

/** The request limits of {@link ServeOptions} with their defaults applied, as /v1/info reports them. */
export interface ServeLimits {
  /** Largest request body, bytes. */
  readonly bodyBytes: number;
  /** Most pixels an image may have. */
  readonly pixels: number;
  /** Most files in one multipart request. */
  readonly files: number;
}

/** The limits of `opts`, defaults applied. */
export function serveLimits(opts: ServeOptions): ServeLimits {
  return { bodyBytes: opts.bodyLimit ?? 16 * 2 ** 20, pixels: opts.maxPixels ?? 50e6, files: opts.maxFiles ?? 64 };
}
