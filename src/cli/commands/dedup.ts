// moco dedup: exact and near-duplicate groups of a collection or of image folders; JSON/CSV, an HTML review
// page, and (only with --move-to) the duplicates moved aside.
import type { Command } from 'commander';
import { parse } from 'node:path';
import { writeTextAtomic } from '../../io/atomic.js';
import { addEmbedOptions, progress } from './eval-common.js';
import { int, num } from './flag-numbers.js';
import { DEFAULT_EMBEDDING } from '../../collections/dedup.js';
import { DEFAULT_SHRINKAGE } from '../../collections/whiten.js';
import { DEFAULT_HASH_DISTANCE } from '../../collections/phash.js';
import { embedHooks, loadInput, type InputOpts, outFormat } from './collection-input.js';
import { existsSync } from 'node:fs';

interface DedupCliOpts extends InputOpts {
  threshold?: string;
  linkage: string;
  keep: string;
  neighbours: string;
  out?: string;
  html?: string;
  inline: boolean;
  moveTo?: string;
  exactCandidates: boolean;
  whiten: string | false;
  whitenDims?: string;
  hash: boolean;
  hashDistance: string;
  storedVectors: boolean;
}

export function register(program: Command): void {
  const cmd = program
    .command('dedup')
    .description(
      'exact duplicates (SHA-256) and near-duplicates (cosine ≥ --threshold) as groups with a keeper; nothing is moved or deleted unless --move-to is given',
    )
    .argument('[images...]', 'image files or folders (embedded with --pretrained), instead of --db')
    .option('--db <uri>', 'LanceDB collection from `moco index`')
    .option('--where <filter>', 'with --db: only the rows passing a structured filter, e.g. "label = \'cat\'"')
    .option(
      '--threshold <cos>',
      'cosine at or above which two images are near-duplicates (default: chosen from the measured precision/recall curve, docs/collections.md)',
    )
    .option('--linkage <how>', 'complete (every pair in a group above the threshold) or single (chains)', 'complete')
    .option('--keep <rule>', 'keeper of a group: largest (file size), oldest (mtime) or first (path order)', 'largest')
    .option('--neighbours <n>', 'neighbours looked at per image', '10')
    .option(
      '--whiten <shrinkage>',
      'PCA-whiten the vectors on this collection before comparing them (covariance shrunk towards the identity by this fraction; docs/collections.md)',
      String(DEFAULT_SHRINKAGE),
    )
    .option('--no-whiten', 'compare the vectors as stored (then the default --threshold is UNWHITENED_THRESHOLD)')
    .option(
      '--whiten-dims <k>',
      'principal components kept by --whiten (default all, or rows / 4 when there are fewer than 4 rows per dimension)',
    )
    .option('--exact-candidates', 'with --db: candidates from an exact search instead of the ANN index', false)
    .option(
      '--hash-distance <bits>',
      'also near-duplicates: files whose perceptual hashes (pHash, either orientation) differ in at most this many of 63 bits, whatever their cosine — brightness, contrast, gamma, re-encodes and resizes (docs/collections.md)',
      String(DEFAULT_HASH_DISTANCE),
    )
    .option('--no-hash', 'compare the vectors only (no perceptual hashes)')
    .option(
      '--stored-vectors',
      "with --db: use the collection's vectors even when they are not the embedding the default threshold was chosen on (default: re-embed the files with the collection's encoder in that embedding, as `moco dedup FOLDER` does)",
      false,
    )
    .option('--out <file>', 'groups as .json or .csv (default: JSON on stdout)')
    .option('--html <file>', 'an HTML review page of the groups with thumbnails')
    .option('--inline', 'inline the HTML thumbnails (a page that stands alone)', false)
    .option(
      '--move-to <dir>',
      'move every non-keeper into DIR (keeping its path below the common folder; a taken name gets " (1)"); each move is journaled in DIR/moved.jsonl, appended by every run, before it happens',
    );
  // Region features, flip- and crop-averaged by default: the embedding the default threshold was chosen on
  // (DEFAULT_EMBEDDING, docs/collections.md).
  addEmbedOptions(cmd, {
    pretrained: 'with image folders: the encoder (run dir, .safetensors, .pth, .pth.tar)',
    featureDefault: DEFAULT_EMBEDDING.feature,
    flipDefault: DEFAULT_EMBEDDING.flip,
    cropsDefault: DEFAULT_EMBEDDING.crops,
  }).action(async (images: string[], o: DedupCliOpts) => {
    const {
      findDuplicates,
      hashFiles,
      whitenDims,
      whitenVectors,
      recordedEmbedding,
      isDefaultEmbedding,
      reembedRows,
      collectionCandidates,
      groupsCsv,
      moveDuplicates,
      DEFAULT_THRESHOLD,
      UNWHITENED_THRESHOLD,
      ROWS_PER_DIM,
    } = await import('../../collections/index.js');
    const hashDistance = int('--hash-distance', o.hashDistance)!;
    if (!(hashDistance >= 0 && hashDistance <= 11))
      throw new Error(
        `--hash-distance must be a whole number of bits from 0 to 11, got '${o.hashDistance}' (or --no-hash)`,
      );
    if (o.linkage !== 'complete' && o.linkage !== 'single')
      throw new Error(`--linkage must be complete or single, got '${o.linkage}'`);
    if (o.keep !== 'largest' && o.keep !== 'oldest' && o.keep !== 'first')
      throw new Error(`--keep must be largest, oldest or first, got '${o.keep}'`);
    const shrinkage = o.whiten === false ? null : num('--whiten', o.whiten)!;
    const threshold =
      num('--threshold', o.threshold) ?? (shrinkage === null ? UNWHITENED_THRESHOLD : DEFAULT_THRESHOLD);
    if (!(threshold > -1 && threshold <= 1))
      throw new Error(`--threshold must be a cosine in (−1, 1], got '${o.threshold}'`);
    const fmt = o.out ? outFormat('--out', o.out) : 'json';
    const t0 = performance.now();
    let inp = await loadInput('dedup', images, o);
    try {
      const m = inp.coll?.meta;
      const made = m ? recordedEmbedding(m) : null;
      const otherEmbedding = made && !isDefaultEmbedding(made);
      let reembedded = false;
      if (otherEmbedding && !o.storedVectors) {
        // The collection's vectors serve search; dedup's threshold was chosen on another embedding of the same
        // encoder, so the files are embedded again that way: `index` then `dedup --db` answers as `dedup FOLDER`.
        const enc = o.pretrained ?? m?.pretrained;
        if (!enc || !existsSync(enc))
          throw new Error(
            `moco dedup: ${inp.source} holds ${made!.feature} vectors${made!.flip ? '' : ' without --flip'} with --crops ${made!.crops}, not the embedding the default threshold was chosen on, and its encoder ${enc ?? '(unrecorded)'} is not there to embed the files again: pass --pretrained CKPT, or --stored-vectors with a --threshold of your own`,
          );
        console.error(
          `moco dedup: ${inp.source} holds ${made!.feature} vectors; embedding its ${inp.rows.length} files again with ${enc} as --feature ${DEFAULT_EMBEDDING.feature} --flip --crops ${DEFAULT_EMBEDDING.crops}, the embedding the default threshold was chosen on (--stored-vectors skips this)`,
        );
        inp = await reembedRows(inp, enc, {
          feature: DEFAULT_EMBEDDING.feature,
          flip: DEFAULT_EMBEDDING.flip,
          crops: { kind: DEFAULT_EMBEDDING.crops },
          batchSize: int('--batch', o.batch),
          ...embedHooks('dedup'),
        });
        reembedded = true; // the stored vectors' ANN index no longer gives this embedding's candidates
      } else if (otherEmbedding && o.threshold === undefined) {
        console.error(
          `moco dedup: ${inp.source} holds ${made!.feature} vectors${made!.flip ? '' : ' without --flip'} with --crops ${made!.crops}; the default threshold was chosen for --feature ${DEFAULT_EMBEDDING.feature} --flip --crops ${DEFAULT_EMBEDDING.crops}, so expect it to be off (docs/collections.md)`,
        );
      }
      const hashes = o.hash
        ? await hashFiles(
            inp.rows.map((r) => r.path),
            { onProgress: progress('moco dedup: hashing') },
          )
        : undefined;
      if (hashes?.some((h) => h === null))
        console.error(
          `moco dedup: ${hashes.filter((h) => h === null).length} files could not be hashed (gone or unreadable); they are compared by their vectors only`,
        );
      // Whitening is fitted on the rows compared (the collection, or its --where subset); ANN candidates still
      // come from the stored vectors, and every pair is scored on the whitened ones.
      let { vectors, dim } = inp;
      if (shrinkage !== null) {
        const rows = inp.vectors.length / inp.dim;
        const asked = int('--whiten-dims', o.whitenDims);
        const dims = asked ?? whitenDims(rows, inp.dim);
        if (asked === undefined && dims !== undefined) {
          console.error(
            `moco dedup: ${rows} rows are few to whiten ${inp.dim}-d vectors on; keeping ${dims} components (rows / ${ROWS_PER_DIM}). The default threshold was measured on 4000 images (~9 rows per dimension) and is not calibrated here: check the groups (--html) and pass --threshold, or --no-whiten (docs/collections.md)`,
          );
        }
        ({ vectors, dim } = whitenVectors(inp.vectors, inp.dim, { shrinkage, dims }));
      }
      const coll = inp.coll;
      const candidates =
        coll && !reembedded && !o.exactCandidates && (await coll.indexState()).type
          ? collectionCandidates(coll, inp.rows, inp.vectors, inp.dim)
          : undefined;
      const r = await findDuplicates(inp.rows, vectors, dim, {
        threshold,
        linkage: o.linkage as 'complete' | 'single',
        keep: o.keep as 'largest' | 'oldest' | 'first',
        neighbours: int('--neighbours', o.neighbours),
        candidates,
        ...(hashes ? { hashes, hashDistance } : {}),
      });
      const ms = performance.now() - t0;
      const exact = r.groups.filter((g) => g.kind === 'exact').length;
      console.error(
        `moco dedup: ${r.files} images: ${r.groups.length} groups (${exact} exact, ${r.groups.length - exact} near) at cosine ≥ ${threshold}, ${r.linkage} linkage; ${r.removable} removable, keeping the ${r.keep} (${(ms / 1000).toFixed(1)} s)`,
      );
      const summary = {
        command: 'dedup',
        source: inp.source,
        threshold,
        hashDistance: hashes ? hashDistance : null,
        whiten: shrinkage === null ? null : { shrinkage, dims: dim },
        linkage: r.linkage,
        keep: r.keep,
        files: r.files,
        groups: r.groups.length,
        removable: r.removable,
        ms: Math.round(ms),
      };
      if (o.out && fmt === 'csv') writeTextAtomic(o.out, groupsCsv(r.groups));
      else if (o.out) writeTextAtomic(o.out, `${JSON.stringify({ ...summary, groups: r.groups }, null, 1)}\n`);
      if (o.html) {
        const { writeGroupsHtml } = await import('../../views/groups-html.js');
        await writeGroupsHtml(
          o.html,
          r.groups.map((g, gi) => ({
            title: `group ${gi + 1}: ${g.kind}, ${g.duplicates.length + 1} images, lowest cosine ${g.minScore.toFixed(3)}`,
            images: [
              {
                path: g.keeper.path,
                caption: `keep ${parse(g.keeper.path).base} (${g.keeper.bytes} B)`,
                mark: 'keep' as const,
              },
              ...g.duplicates.map((d) => ({
                path: d.path,
                caption: `${d.score.toFixed(3)} ${parse(d.path).base}`,
                mark: 'dup' as const,
              })),
            ],
          })),
          {
            inline: o.inline,
            title: `moco dedup: ${inp.source}`,
            summary: `${r.files} images, ${r.groups.length} groups, ${r.removable} removable; cosine ≥ ${threshold}, ${r.linkage} linkage, keeper: ${r.keep}`,
          },
        );
        console.error(`moco dedup: wrote ${o.html}`);
      }
      if (o.moveTo) {
        const mv = moveDuplicates(r.groups, o.moveTo);
        for (const k of mv.kept) console.error(`moco dedup: not moving ${k.path}: ${k.reason}`);
        if (coll) await coll.deletePaths(mv.moved.map((m) => m.from));
        console.error(
          `moco dedup: moved ${mv.moved.length} files into ${o.moveTo} (journal of the moves, appended: ${mv.journal})`,
        );
      }
      console.log(JSON.stringify(o.out ? summary : { ...summary, groups: r.groups }));
    } finally {
      inp.coll?.close();
    }
  });
}
