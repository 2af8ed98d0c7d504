// HTML review pages for collections: duplicate groups (the keeper first, each duplicate with its cosine to it)
// and clusters (each cluster's images nearest its centroid). Images are paths relative to the page or inlined
// thumbnails, as on the search page.
import { writeTextAtomic } from '../io/atomic.js';
import { esc, imageSrc } from './search-html.js';

/** One row of a page: a heading and its images with captions; the first image may be marked. */
export interface GroupRow {
  title: string;
  images: { path: string; caption: string; mark?: 'keep' | 'dup' }[];
}

export interface GroupsHtmlOpts {
  /** Inline 128-px thumbnails (a page that stands alone); default false. */
  inline?: boolean;
  title: string;
  /** A line under the title (settings, counts). */
  summary?: string;
}

/** Writes `page` (atomically) with one row a group. */
export async function writeGroupsHtml(page: string, rows: readonly GroupRow[], o: GroupsHtmlOpts): Promise<void> {
  const inline = o.inline ?? false;
  const out: string[] = [];
  for (const r of rows) {
    const cells: string[] = [];
    for (const im of r.images) {
      const s = await imageSrc(im.path, page, inline);
      cells.push(
        `<figure class="${im.mark ?? ''}">${s ? `<img src="${esc(s)}" loading="lazy" alt="">` : '<div class="missing">unreadable</div>'}<figcaption title="${esc(im.path)}">${esc(im.caption)}</figcaption></figure>`,
      );
    }
    out.push(`<section><h2>${esc(r.title)}</h2><div class="row">${cells.join('')}</div></section>`);
  }
  writeTextAtomic(
    page,
    `<!doctype html>
<html><head><meta charset="utf-8"><title>${esc(o.title)}</title>
<style>
body{font:13px system-ui,sans-serif;margin:16px;background:#fafafa}
h2{font-size:14px;margin:14px 0 6px}
.row{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;width:132px}
img{width:128px;height:128px;object-fit:contain;image-rendering:pixelated;background:#eee;border:2px solid #ddd}
.keep img{border-color:#2a8a3a}
.dup img{border-color:#c33}
figcaption{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.missing{width:128px;height:128px;background:#fdd}
</style></head><body>
<h1>${esc(o.title)}</h1>
${o.summary ? `<p>${esc(o.summary)}</p>` : ''}
${out.join('\n')}
</body></html>
`,
  );
}
