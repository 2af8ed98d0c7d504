// The service's runtime: the model, the batcher and the search backend, loaded in the background, and the phase
// (loading, ready, draining, failed) that every route consults. The routes receive it as their plugin option;
// callers see it as `app.moco`.
import { basename, relative, resolve, sep } from 'node:path';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Batcher } from '../batcher.js';
import { HttpError, unavailable } from '../errors.js';
import { ServeModel } from '../model.js';
import { serveLimits, type ServeLimits, type ServeOptions } from '../options.js';
import { openSearchBackend, type SearchBackend, type SearchFilter } from '../search-backend.js';

/** The service's phase, as /readyz reports it. */
export type ServePhase = 'loading' | 'ready' | 'draining' | 'failed';

/** State of a running service, decorated on the fastify instance as `app.moco`. */
export interface ServeState {
  readonly phase: ServePhase;
  /** Resolves when the model (and index) are loaded; rejects when loading failed. */
  readonly loaded: Promise<void>;
  readonly model: ServeModel | null;
  readonly backend: SearchBackend | null;
  readonly batcher: Batcher | null;
  /**
   * Graceful shutdown: stop accepting, report not-ready, finish queued work, release the model. With
   * `timeoutMs`, connections still open after that long (a slow upload, say) are closed.
   */
  drain(o?: { timeoutMs?: number }): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    moco: ServeState;
  }
}

/** The runtime, as the plugins and routes are given it. */
export interface RuntimeOptions {
  runtime: ServeRuntime;
}

/**
 * {@link ServeState} and what the routes need besides: the failure of a failed load, the resolved limits, the
 * guard that refuses work until the model is ready, and how server paths are shown to clients.
 */
export class ServeRuntime implements ServeState {
  private _phase: ServePhase = 'loading';
  private _failure = '';
  private _model: ServeModel | null = null;
  private _backend: SearchBackend | null = null;
  private _batcher: Batcher | null = null;
  readonly loaded: Promise<void>;
  readonly limits: ServeLimits;
  private readonly absolutePaths: boolean;

  /** Starts loading the model (and index) at once; `app` is the instance that `drain` closes. */
  constructor(
    private readonly app: FastifyInstance,
    opts: ServeOptions,
  ) {
    this.limits = serveLimits(opts);
    this.absolutePaths = opts.absolutePaths ?? false;
    this.loaded = this.load(opts);
    this.loaded.catch(() => undefined); // reported by /readyz and to whoever awaits app.moco.loaded
  }

  get phase(): ServePhase {
    return this._phase;
  }
  /** Why loading failed ('' unless the phase is 'failed'). */
  get failure(): string {
    return this._failure;
  }
  get model(): ServeModel | null {
    return this._model;
  }
  get backend(): SearchBackend | null {
    return this._backend;
  }
  get batcher(): Batcher | null {
    return this._batcher;
  }

  private async load(opts: ServeOptions): Promise<void> {
    try {
      const backend = (this._backend = await openSearchBackend({ index: opts.index, db: opts.db }));
      const { feature, threads, engine } = opts;
      const m = (this._model = await ServeModel.open(opts.pretrained, { feature, threads, engine }));
      if (backend && backend.dim !== m.info.dim) {
        throw new Error(
          `${backend.source} holds ${backend.dim}-d vectors but the model ${opts.pretrained} gives ` +
            `${m.info.dim}-d: serve the index with the model it was embedded with`,
        );
      }
      const s = m.info.preprocessing.size;
      const { maxBatch, maxDelayMs, maxQueue } = opts;
      this._batcher = new Batcher((x, n) => m.embed(x, n), 3 * s * s, m.info.dim, { maxBatch, maxDelayMs, maxQueue });
      if (this._phase === 'loading') this._phase = 'ready';
    } catch (e) {
      this._phase = 'failed';
      this._failure = (e as Error).message;
      await this._backend?.close();
      throw e;
    }
  }

  // An arrow property, not a method: callers may pass `app.moco.drain` on as a function.
  readonly drain = (o: { timeoutMs?: number } = {}): Promise<void> => {
    this.stopAccepting();
    const closing = this.app.close();
    if (o.timeoutMs === undefined) return closing;
    // Past the deadline every connection is closed, a request still uploading included: a trickling client
    // cannot hold the process open.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.app.server.closeAllConnections();
        resolve();
      }, o.timeoutMs);
    });
    return Promise.race([closing, deadline.then(() => closing)]).finally(() => clearTimeout(timer));
  };

  /** Reports not-ready from now on (a failed load stays 'failed'). */
  stopAccepting(): void {
    if (this._phase !== 'failed') this._phase = 'draining';
  }

  /** Finishes queued work and releases the model and index, once loading has ended either way. */
  async release(): Promise<void> {
    await this.loaded.catch(() => undefined);
    await this._batcher?.drain();
    await this._model?.close();
    await this._backend?.close();
  }

  /** The model and batcher; a 503 saying why while the model is loading, draining or failed. */
  ready(): { model: ServeModel; batcher: Batcher } {
    if (this._phase === 'loading') throw unavailable('the model is still loading; retry shortly', 2);
    if (this._phase === 'draining') throw unavailable('the server is shutting down', 5);
    if (this._phase === 'failed') throw new HttpError(503, 'failed', `the model failed to load: ${this._failure}`);
    return { model: this._model!, batcher: this._batcher! };
  }

  // What clients see of a server path: relative to the index's root folder, or only a file's name, unless the
  // operator opted into absolute paths.

  /** An index image's path as a client sees it. */
  shownImage(path: string): string {
    const root = this._backend?.root;
    return this.absolutePaths || !root ? path : relative(root, path);
  }

  /** A model or index file as a client sees it. */
  shownFile(path: string): string {
    return this.absolutePaths ? resolve(path) : basename(path);
  }

  /** A client's filter on the server's paths: its path prefix is relative to the root as the paths shown are. */
  serverFilter(f: SearchFilter): SearchFilter {
    const root = this._backend?.root;
    if (f.pathPrefix === undefined || this.absolutePaths || !root) return f;
    return { ...f, pathPrefix: root.endsWith(sep) ? root + f.pathPrefix : root + sep + f.pathPrefix };
  }
}

/** The runtime's lifecycle: not-ready as soon as closing starts, released once requests are answered. */
export const runtimePlugin = fp<RuntimeOptions>(
  async (app, { runtime }) => {
    app.addHook('preClose', async () => runtime.stopAccepting());
    // fastify runs onClose after in-flight requests are answered; queued work belongs to them.
    app.addHook('onClose', async () => runtime.release());
  },
  { name: 'moco-runtime', fastify: '5.x' },
);
