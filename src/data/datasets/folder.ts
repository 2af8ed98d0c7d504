// ImageFolder (root/<class>/<file>, as torchvision) and UnlabeledFolder (every image under root).
import { readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { FileDataset } from './dataset.js';

/** Image extensions read from folders (case-insensitive), as torchvision's IMG_EXTENSIONS minus rare ones. */
export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff'];

export function isImageFile(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());
}

function isDir(p: string): boolean {
  try { return statSync(p).isDirectory(); } catch { return false; } // statSync follows symlinks
}

function isFile(p: string): boolean {
  try { return statSync(p).isFile(); } catch { return false; }
}

/** Non-hidden entries of a directory, sorted by code point (as Python's sorted()). */
function entries(dir: string): string[] {
  return readdirSync(dir).filter((e) => !e.startsWith('.')).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Image files under `dir`, recursively, in sorted order; symlinks followed (cycles guarded by depth). */
export function listImages(dir: string, depth = 0): string[] {
  if (depth > 32) return [];
  const out: string[] = [];
  for (const e of entries(dir)) {
    const p = join(dir, e);
    if (isDir(p)) out.push(...listImages(p, depth + 1));
    else if (isImageFile(e) && isFile(p)) out.push(p);
  }
  return out;
}

/**
 * torchvision's ImageFolder: `root/<class>/**\/<image>`, classes are the sorted sub-folder names, labels their
 * index. Extensions {@link IMAGE_EXTENSIONS} case-insensitively; hidden files and folders ignored; symlinks
 * followed. Class folders without images are an error, as in torchvision.
 */
export class ImageFolder extends FileDataset {
  /** Class name → label. */
  readonly classToIdx: ReadonlyMap<string, number>;
  constructor(readonly root: string) {
    if (!isDir(root)) throw new Error(`ImageFolder: ${root} is not a directory`);
    const classes = entries(root).filter((e) => isDir(join(root, e)));
    if (!classes.length) throw new Error(`ImageFolder: ${root} has no class sub-folders (expected root/<class>/<image>)`);
    const paths: string[] = [];
    const labels: number[] = [];
    classes.forEach((c, k) => {
      const files = listImages(join(root, c));
      if (!files.length) throw new Error(`ImageFolder: class folder ${join(root, c)} has no images (${IMAGE_EXTENSIONS.join(' ')})`);
      for (const f of files) { paths.push(f); labels.push(k); }
    });
    super(paths, Int32Array.from(labels), classes, `ImageFolder(${root})`);
    this.classToIdx = new Map(classes.map((c, i) => [c, i]));
  }
}

/** Every image under `root`, recursively, without labels — for data that has none. */
export class UnlabeledFolder extends FileDataset {
  constructor(readonly root: string) {
    if (!isDir(root)) throw new Error(`UnlabeledFolder: ${root} is not a directory`);
    const paths = listImages(root);
    if (!paths.length) throw new Error(`UnlabeledFolder: no images (${IMAGE_EXTENSIONS.join(' ')}) under ${root}`);
    super(paths, null, null, `UnlabeledFolder(${root})`);
  }
}
