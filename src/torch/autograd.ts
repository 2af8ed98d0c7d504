// Gradient mode. Grad mode is per thread in libtorch; all JS runs on one thread, so a flag flip is a scope.
import { native } from './native.js';

/** Runs `fn` with gradient recording off (torch.no_grad()). */
export function noGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(false);
  try {
    const r = fn();
    if (r instanceof Promise) throw new Error('noGrad(): the function must be synchronous');
    return r;
  } finally {
    native.setGradEnabled(prev);
  }
}

/** Runs `fn` with gradient recording on, even inside noGrad (torch.enable_grad()). */
export function enableGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(true);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}
export function setGradEnabled(on: boolean): void {
  native.setGradEnabled(on);
}
