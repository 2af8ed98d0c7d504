// A full garbage collection on demand, so tests can count live tensors without earlier tests' garbage.
import v8 from 'node:v8';
import vm from 'node:vm';

v8.setFlagsFromString('--expose-gc');
const gcFn = vm.runInNewContext('gc') as () => void;

export function forceGc(): void {
  gcFn();
  gcFn();
}
