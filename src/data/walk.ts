// The one folder walk behind every command that takes image folders (pretrain, knn, lincls, embed, index,
// search, dedup, cluster, select, serve's gallery): each real folder and each real file is taken once, however
// many paths reach it, and every entry met is either used or named with the reason it was not.
// No libtorch here: the ONNX path (eval/onnx-embed.ts) walks folders with it too.
import { lstatSync, readdirSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, relative, sep } from 'node:path';

/** A file that could not be used, and why. */
export interface Skipped {
  path: string;
  reason: string;
}

/** Image extensions read from folders (case-insensitive), as torchvision's IMG_EXTENSIONS minus rare ones. */
export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff'];

export function isImageFile(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());
}

/** One image file found, with the input it was found under. */
export interface Found {
  /** The path it was reached by first (the input joined with the names walked). */
  path: string;
  /**
   * Its label: the name of the first folder below the input folder it sits in (torchvision's ImageFolder rule:
   * `root/<class>/**\/<file>`); null for a file directly in an input folder or given as a file.
   */
  label: string | null;
}

export interface WalkResult {
  /** Image files: inputs in the order given; under a folder, by folder path then name (code points), as torchvision's ImageFolder. */
  found: Found[];
  /** Entries met and not used: dangling or looping links, folders and files reached again, unreadable folders, names that are not UTF-8, files without an image extension. */
  skipped: Skipped[];
  /** The inputs that are folders, as given: the roots the labels are taken below (see {@link labelUnder}). */
  roots: string[];
}

export interface WalkOpts {
  /** Called once per entry left out, as it is met. */
  onSkip?: (s: Skipped) => void;
}

/** The identity of a file or folder: a second path to the same device + inode is the same thing. */
const idOf = (st: Stats): string => `${st.dev}:${st.ino}`;

/** Sorted by code point (as Python's sorted()), which is what `<` on strings does. */
const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Every image file under `inputs` (files or folders), following symbolic links, without recursion on the JS
 * stack. A folder or file reached again — through a link, a link cycle, overlapping inputs, or a hard link — is
 * used once, at its first path; the others are named in `skipped`. Hidden entries (a name starting with '.') are
 * not walked: they are metadata (`.DS_Store`, AppleDouble `._x.jpg` files), never images a user meant.
 * An input that does not exist, or is a dangling link, throws naming it.
 */
export function walkImages(inputs: readonly string[], o: WalkOpts = {}): WalkResult {
  const found: Found[] = [];
  const skipped: Skipped[] = [];
  const roots: string[] = [];
  const seenDirs = new Map<string, string>();
  const seenFiles = new Map<string, string>();
  const skip = (path: string, reason: string): void => {
    const s = { path, reason };
    skipped.push(s);
    o.onSkip?.(s);
  };
  const takeFile = (path: string, st: Stats, label: string | null): void => {
    const first = seenFiles.get(idOf(st));
    if (first !== undefined)
      return skip(path, `the same file as ${first} (one file reached by two paths is embedded once)`);
    seenFiles.set(idOf(st), path);
    found.push({ path, label });
  };
  for (const input of inputs) {
    let st: Stats;
    try {
      st = statSync(input);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (isLink(input))
        throw new Error(
          `${input}: ${code === 'ELOOP' ? 'a symbolic link that loops' : `a dangling symbolic link (to ${linkTarget(input)})`}`,
          { cause: e },
        );
      throw new Error(`${input}: ${code === 'ENOENT' ? 'no such file or folder' : (e as Error).message}`, { cause: e });
    }
    if (!st.isDirectory()) {
      // A file named directly is taken whatever its extension (the caller asked for it); inside folders only
      // image extensions are.
      if (!st.isFile()) skip(input, 'not a regular file');
      else takeFile(input, st, null);
      continue;
    }
    // Depth-first with an explicit stack; the files are then put in torchvision's order (make_dataset over a
    // sorted os.walk: by folder path as a string, then by name), so that sample indices match a PyTorch peer's.
    const from = found.length;
    roots.push(input);
    const stack: { dir: string; st: Stats; label: string | null }[] = [{ dir: input, st, label: null }];
    while (stack.length) {
      const { dir, st: dst, label } = stack.pop()!;
      const firstPath = seenDirs.get(idOf(dst));
      if (firstPath !== undefined) {
        skip(
          dir,
          isLink(dir) || firstPath !== dir
            ? `a folder already walked as ${firstPath}${isAncestor(dir, firstPath) ? ' (a link cycle)' : ''}`
            : 'a folder already walked',
        );
        continue;
      }
      seenDirs.set(idOf(dst), dir);
      let names: Buffer[];
      try {
        names = readdirSync(dir, { encoding: 'buffer' });
      } catch (e) {
        skip(dir, `unreadable folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
        continue;
      }
      const entries = names
        .map((raw) => ({ raw, name: raw.toString('utf8') }))
        .sort((a, b) => byCodePoint(a.name, b.name));
      const subdirs: { dir: string; st: Stats; label: string | null }[] = [];
      for (const { raw, name } of entries) {
        if (name.startsWith('.')) continue;
        const p = join(dir, name);
        if (!Buffer.from(name, 'utf8').equals(raw)) {
          skip(p, 'the file name is not valid UTF-8 (rename the file; its path cannot be written to a text result)');
          continue;
        }
        let est: Stats;
        try {
          est = statSync(p);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (isLink(p))
            skip(p, code === 'ELOOP' ? 'a symbolic link that loops' : `a dangling symbolic link (to ${linkTarget(p)})`);
          else skip(p, `unreadable (${code ?? (e as Error).message})`);
          continue;
        }
        const sub = label ?? name; // only the input folder itself has no label
        if (est.isDirectory()) subdirs.push({ dir: p, st: est, label: sub });
        else if (!est.isFile()) skip(p, 'not a regular file');
        else if (!isImageFile(name)) skip(p, notImage);
        else takeFile(p, est, label);
      }
      for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
    }
    const mine = found.splice(from).map((f) => ({ f, dir: dirname(f.path), name: basename(f.path) }));
    mine.sort((a, b) => byCodePoint(a.dir, b.dir) || byCodePoint(a.name, b.name));
    found.push(...mine.map((m) => m.f));
  }
  return { found, skipped, roots };
}

/**
 * The label {@link walkImages} gives a file found under the folders `roots`: the name of the first folder below
 * the deepest root that holds `path`; null when it lies directly in that root or under none of them. `path` and
 * `roots` must be alike relative or alike absolute.
 */
export function labelUnder(roots: readonly string[], path: string): string | null {
  let best: string | null = null;
  let depth = -1;
  for (const root of roots) {
    const r = relative(root, path);
    if (r === '' || r.startsWith('..') || isAbsolute(r)) continue;
    const parts = r.split(sep);
    const d = root.split(sep).length;
    if (d > depth) {
      depth = d;
      best = parts.length > 1 ? parts[0]! : null;
    }
  }
  return best;
}

const notImage = `not an image file (extensions read: ${IMAGE_EXTENSIONS.join(' ')})`;

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function linkTarget(p: string): string {
  try {
    return readlinkSync(p);
  } catch {
    return '?';
  }
}

/** Whether folder `a` lies below `b` (so reaching `b` again from `a` is a cycle). */
function isAncestor(a: string, b: string): boolean {
  const r = relative(b, a);
  return r !== '' && !r.startsWith('..') && !r.startsWith(sep);
}

/** The paths of {@link walkImages}' files, for callers that need neither labels nor the skipped list. */
export function imagePaths(inputs: readonly string[], o: WalkOpts = {}): string[] {
  return walkImages(inputs, o).found.map((f) => f.path);
}
