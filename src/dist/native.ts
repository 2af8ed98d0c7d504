// The c10d surface of the addon (native/dist.cc). Only src/dist/ uses it; tensors cross as NativeTensor.
import { native, type NativeTensor } from '../torch/native.js';

/** A c10d TCPStore connection (the server lives in rank 0). Values are UTF-8 strings. */
export interface NativeStore {
  set(key: string, value: string): void;
  /** Waits for the key up to the store's timeout. */
  get(key: string): string;
  /** The value, or null when the key does not exist; never waits. */
  tryGet(key: string): string | null;
  add(key: string, delta: number): number;
  check(keys: string[]): boolean;
  setTimeout(ms: number): void;
  /** The port the store listens on / connected to (the real one when 0 was asked for). */
  port(): number;
  /** Publishes "<count> <note>" under key every intervalMs from a native thread, on a second connection. */
  startHeartbeat(key: string, intervalMs: number): void;
  heartbeatNote(note: string): void;
  stopHeartbeat(): void;
}

export type NativeReduceOp = 'sum' | 'avg' | 'max' | 'min' | 'product';

/** A c10d process group. Every collective takes (…, timeoutMs, label, sync) and returns a Promise unless sync. */
export interface NativeProcessGroup {
  rank(): number;
  size(): number;
  backend(): string;
  allReduce(ts: NativeTensor[], op: NativeReduceOp, timeoutMs: number, label: string, sync: boolean): Promise<void> | undefined;
  /** The sum over ranks as a new tensor whose backward sums the gradient over ranks; always on the JS thread. */
  allReduceSumGrad(t: NativeTensor, timeoutMs: number, label: string): NativeTensor;
  allGather(t: NativeTensor, timeoutMs: number, label: string, sync: boolean): Promise<NativeTensor[]> | NativeTensor[];
  broadcast(ts: NativeTensor[], root: number, timeoutMs: number, label: string, sync: boolean): Promise<void> | undefined;
  barrier(timeoutMs: number, label: string, sync: boolean): Promise<void> | undefined;
}

export interface NativeGroupOpts {
  /** Store key prefix of the backend's own rendezvous. */
  prefix?: string;
  /** Gloo: network interfaces to bind (GLOO_SOCKET_IFNAME). */
  ifnames?: string[];
  /** Gloo: address or hostname to bind when no interface is named. */
  hostname?: string;
}

export interface NativeDist {
  connectStore(host: string, port: number, isServer: boolean, timeoutMs: number): Promise<NativeStore>;
  newProcessGroup(store: NativeStore, rank: number, size: number, backend: string, timeoutMs: number, opts: NativeGroupOpts): Promise<NativeProcessGroup>;
  info(): { gloo: boolean; nccl: boolean };
}

export const nativeDist: NativeDist = (native as unknown as { dist: NativeDist }).dist;
