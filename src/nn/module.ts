// Module: a tree of named parameters, buffers and children with PyTorch's naming and state-dict rules.
import { Tensor, keep, noGrad } from '../torch/index.js';

export type StateDict = Map<string, Tensor>;

export interface LoadResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/**
 * Base class of layers and models. Parameters, buffers and children are registered by name in order, so
 * `namedParameters()` and `stateDict()` give the same dotted names, in the same order, as PyTorch.
 */
export abstract class Module {
  /** Training mode (batch statistics in BN); set by train()/eval(). */
  training = true;
  private readonly params = new Map<string, Tensor | null>();
  private readonly buffers = new Map<string, { t: Tensor | null; persistent: boolean }>();
  private readonly modules = new Map<string, Module>();

  abstract forward(x: Tensor): Tensor;

  /** Registers a parameter (requires grad, outlives tidy scopes) and returns it. */
  protected registerParameter(name: string, t: Tensor | null): Tensor {
    if (t) keep(t).requiresGrad_(true);
    this.params.set(name, t);
    return t as Tensor;
  }

  /** Registers a buffer (running statistics, queues): saved in the state dict when `persistent`. */
  protected registerBuffer(name: string, t: Tensor | null, persistent = true): Tensor {
    if (t) keep(t);
    this.buffers.set(name, { t, persistent });
    return t as Tensor;
  }

  /** Registers a child module under `name` and returns it. */
  protected registerModule<M extends Module>(name: string, m: M): M {
    this.modules.set(name, m);
    return m;
  }

  /** Replaces a registered child (e.g. a ResNet's `fc` by a projection head). The old child is disposed. */
  replaceModule(name: string, m: Module): void {
    const old = this.modules.get(name);
    if (!old)
      throw new Error(`replaceModule: no child named '${name}'; children: ${[...this.modules.keys()].join(', ')}`);
    if (old !== m) old.dispose();
    this.modules.set(name, m);
  }

  /** A registered child by name. */
  child<M extends Module = Module>(name: string): M {
    const m = this.modules.get(name);
    if (!m) throw new Error(`no child module named '${name}'; children: ${[...this.modules.keys()].join(', ')}`);
    return m as M;
  }

  /** A registered parameter or buffer tensor by its own (undotted) name. */
  protected tensor(name: string): Tensor | null {
    return this.params.get(name) ?? this.buffers.get(name)?.t ?? null;
  }

  /** Replaces a buffer's tensor (for buffers whose size changes, e.g. a resized queue). */
  protected setBuffer(name: string, t: Tensor): void {
    const b = this.buffers.get(name);
    if (!b) throw new Error(`setBuffer: no buffer named '${name}'`);
    if (b.t && b.t !== t) b.t.dispose();
    b.t = keep(t);
  }

  children(): Module[] {
    return [...this.modules.values()];
  }
  namedChildren(): [string, Module][] {
    return [...this.modules.entries()];
  }

  /** This module and all descendants, depth first, with dotted names ('' for this one). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, m] of this.modules) out.push(...m.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [n, p] of m.params) if (p) out.push([prefix ? `${prefix}.${n}` : n, p]);
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [n, b] of m.buffers) if (b.t) out.push([prefix ? `${prefix}.${n}` : n, b.t]);
    }
    return out;
  }

  /** Parameters and persistent buffers, in PyTorch's order (each module's params, buffers, then children). */
  stateDict(prefix = ''): StateDict {
    const sd: StateDict = new Map();
    for (const [n, p] of this.params) if (p) sd.set(prefix + n, p);
    for (const [n, b] of this.buffers) if (b.t && b.persistent) sd.set(prefix + n, b.t);
    for (const [n, m] of this.modules) for (const [k, v] of m.stateDict(`${prefix}${n}.`)) sd.set(k, v);
    return sd;
  }

  /**
   * Copies values from `sd` into this module's tensors (same objects, so optimizers keep working).
   * With `strict` (default) missing or unexpected keys are an error; a shape mismatch always is. The error
   * lists every offending key.
   */
  loadStateDict(sd: Map<string, Tensor> | Record<string, Tensor>, opts: { strict?: boolean } = {}): LoadResult {
    const strict = opts.strict ?? true;
    const src = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !src.has(k));
    const unexpected = [...src.keys()].filter((k) => !own.has(k));
    const mismatched: string[] = [];
    for (const [k, t] of own) {
      const s = src.get(k);
      if (s && (s.shape.length !== t.shape.length || s.shape.some((d, i) => d !== t.shape[i]))) {
        mismatched.push(`${k}: checkpoint [${s.shape.join(', ')}] vs model [${t.shape.join(', ')}]`);
      }
    }
    if (mismatched.length || (strict && (missing.length || unexpected.length))) {
      const parts: string[] = [];
      if (missing.length) parts.push(`missing keys (${missing.length}): ${missing.join(', ')}`);
      if (unexpected.length) parts.push(`unexpected keys (${unexpected.length}): ${unexpected.join(', ')}`);
      if (mismatched.length) parts.push(`shape mismatch (${mismatched.length}): ${mismatched.join('; ')}`);
      throw new Error(`loadStateDict: ${parts.join('. ')}`);
    }
    noGrad(() => {
      for (const [k, t] of own) {
        const s = src.get(k);
        if (!s) continue;
        if (s.dtype !== t.dtype || s.device !== t.device) {
          const c = s.to(t.dtype).to(t.device);
          t.copy_(c);
          c.dispose();
        } else {
          t.copy_(s);
        }
      }
    });
    return { missingKeys: missing, unexpectedKeys: unexpected };
  }

  /** Sets training mode here and in every descendant. */
  train(on = true): this {
    for (const [, m] of this.namedModules()) m.training = on;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  requiresGrad_(on = true): this {
    for (const p of this.parameters()) p.requiresGrad_(on);
    return this;
  }

  /** Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  /** Moves or converts every parameter and buffer (layers read their tensors by name, so they follow). */
  to(target: string): this {
    return this.convertTensors((t) => t.to(target));
  }

  /**
   * Stores every 4-D parameter and buffer in `format` (PyTorch's `model.to(memory_format=torch.channels_last)`):
   * with channels-last inputs, convolutions then run in NHWC without a layout change per layer.
   */
  toMemoryFormat(format: 'contiguous' | 'channelsLast'): this {
    return this.convertTensors((t) => (t.dim() === 4 ? t.contiguous(format) : t));
  }

  /**
   * Replaces every parameter and buffer by `fn` of it (keeping requiresGrad); a tensor `fn` returns unchanged
   * stays. Subclasses that cache parameter lists refresh them here.
   */
  protected convertTensors(fn: (t: Tensor) => Tensor): this {
    for (const [, m] of this.namedModules()) {
      for (const [n, p] of m.params) {
        if (!p) continue;
        const moved = keep(noGrad(() => fn(p)));
        if (moved === p) continue;
        moved.requiresGrad_(p.requiresGrad);
        p.dispose();
        m.params.set(n, moved);
      }
      for (const [, b] of m.buffers) {
        if (!b.t) continue;
        const moved = keep(noGrad(() => fn(b.t!)));
        if (moved !== b.t) b.t.dispose();
        b.t = moved;
      }
    }
    return this;
  }

  /** Calls `fn` on every module, children first (as PyTorch's apply). */
  apply(fn: (m: Module) => void): this {
    for (const m of this.modules.values()) m.apply(fn);
    fn(this);
    return this;
  }

  /** Frees every parameter and buffer of this tree. */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      for (const p of m.params.values()) p?.dispose();
      for (const b of m.buffers.values()) b.t?.dispose();
    }
  }
}
