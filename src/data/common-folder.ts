// The deepest folder holding a set of files: what a search server reports paths relative to, and what the decode
// cache names as a dataset's source.
import { dirname, sep } from 'node:path';

/**
 * The deepest folder that holds every one of `paths` (absolute paths of files); '' when there are none. Found in
 * one pass with no copy of the paths, so that a collection's millions of rows can be streamed through it.
 */
export function commonFolder(paths: Iterable<string>): string {
  let root: string | null = null;
  for (const p of paths) {
    const dir = dirname(p);
    if (root === null) {
      root = dir;
      continue;
    }
    while (root !== dir && !dir.startsWith(root.endsWith(sep) ? root : root + sep)) {
      const up = dirname(root);
      if (up === root) break; // the filesystem root holds everything
      root = up;
    }
  }
  return root ?? '';
}
