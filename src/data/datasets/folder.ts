// ImageFolder (root/<class>/<file>, as torchvision) and UnlabeledFolder (every image under root), both over the
// one folder walk (walk.ts): every entry met is used or reported to the skip log with its reason.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FileDataset } from './dataset.js';
import { skipLog, type SkipLog } from '../decode.js';
import { IMAGE_EXTENSIONS, walkImages } from '../walk.js';

export { IMAGE_EXTENSIONS, isImageFile } from '../walk.js';

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  } // statSync follows symlinks
}

export interface FolderOpts {
  /** Where entries that are not used (links, non-images, …) are reported. Default: the process-wide skip log. */
  log?: SkipLog;
}

/**
 * torchvision's ImageFolder: `root/<class>/**\/<image>`, classes are the sorted names of the sub-folders that
 * hold images, labels their index. Extensions {@link IMAGE_EXTENSIONS} case-insensitively; hidden files and
 * folders ignored; symlinks followed, each real folder and file once (walkImages). Files directly in root are
 * reported and left out; a root without class folders is an error.
 */
export class ImageFolder extends FileDataset {
  /** Class name → label. */
  readonly classToIdx: ReadonlyMap<string, number>;
  constructor(
    readonly root: string,
    o: FolderOpts = {},
  ) {
    if (!isDir(root)) throw new Error(`ImageFolder: ${root} is not a directory`);
    const log = o.log ?? skipLog;
    const { found } = walkImages([root], { onSkip: (s) => log.report(s.path, s.reason) });
    const inClass = found.filter((f) => {
      if (f.label === null) log.report(f.path, `not inside a class folder of ${root} (expected root/<class>/<image>)`);
      return f.label !== null;
    });
    // The classes are the class folders, not the labels seen: a class folder without images is an error (as in
    // torchvision), never a silent shift of every later class index between a train and a val folder.
    const classes = readdirSync(root)
      .filter((e) => !e.startsWith('.') && isDir(join(root, e)))
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    if (!classes.length)
      throw new Error(`ImageFolder: ${root} has no class sub-folders (expected root/<class>/<image>)`);
    const count = new Map<string, number>();
    for (const f of inClass) count.set(f.label!, (count.get(f.label!) ?? 0) + 1);
    for (const c of classes) {
      if (!count.get(c))
        throw new Error(
          `ImageFolder: class folder ${join(root, c)} has no images (${IMAGE_EXTENSIONS.join(' ')}; a link to a folder already walked counts once, under its first name)`,
        );
    }
    const classToIdx = new Map(classes.map((c, i) => [c, i]));
    super(
      inClass.map((f) => f.path),
      Int32Array.from(inClass, (f) => classToIdx.get(f.label!)!),
      classes,
      `ImageFolder(${root})`,
    );
    this.classToIdx = classToIdx;
  }
}

/** Every image under `root`, recursively, without labels — for data that has none. */
export class UnlabeledFolder extends FileDataset {
  constructor(
    readonly root: string,
    o: FolderOpts = {},
  ) {
    if (!isDir(root)) throw new Error(`UnlabeledFolder: ${root} is not a directory`);
    const log = o.log ?? skipLog;
    const paths = walkImages([root], { onSkip: (s) => log.report(s.path, s.reason) }).found.map((f) => f.path);
    if (!paths.length) throw new Error(`UnlabeledFolder: no images (${IMAGE_EXTENSIONS.join(' ')}) under ${root}`);
    super(paths, null, null, `UnlabeledFolder(${root})`);
  }
}
