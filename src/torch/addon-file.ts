// Where `npm run build:native` puts the compiled addons (build/Release/ of the package), found from the running
// module, whether it runs from dist/src/<folder>/ or from src/<folder>/. Loads nothing, so that an optional addon
// can be looked for without loading libtorch.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The path of build/Release/`file` (e.g. 'moco_native.node') in the nearest of up to five folders above this
 * module, or null where none holds it.
 */
export function findBuiltAddon(file: string): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'build', 'Release', file);
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  return null;
}
