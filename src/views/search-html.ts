// An HTML page of search results for people to look at: one row a query, the query image then its neighbours
// with their scores; images as paths relative to the page, or inlined as JPEG thumbnails (data URIs).
import sharp from 'sharp';
import { dirname, relative, resolve } from 'node:path';
import { writeTextAtomic } from '../io/atomic.js';
import type { Neighbour } from '../eval/search.js';

export interface SearchHtmlOpts {
  /** Inline images as 128-px JPEG thumbnails, so the page stands alone; default false (relative paths). */
  inline?: boolean;
  /** Page title. */
  title?: string;
}

/** Escapes text for HTML content and attributes. */
export const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** An image's `src` on `page`: a 128-px JPEG data URI when `inline`, else its path relative to the page ('' when unreadable). */
export async function imageSrc(path: string, page: string, inline: boolean): Promise<string> {
  if (inline) {
    try {
      const b = await sharp(path).resize(128, 128, { fit: 'inside' }).jpeg({ quality: 80 }).toBuffer();
      return `data:image/jpeg;base64,${b.toString('base64')}`;
    } catch {
      return '';
    }
  }
  const rel = relative(dirname(resolve(page)), resolve(path));
  return rel.split('/').map(encodeURIComponent).join('/');
}

/** Writes `page` (atomically): queries[i] with results[i]. */
export async function writeSearchHtml(
  page: string,
  queries: readonly string[],
  results: readonly Neighbour[][],
  o: SearchHtmlOpts = {},
): Promise<void> {
  const inline = o.inline ?? false;
  const cell = async (path: string, caption: string, cls: string): Promise<string> => {
    const s = await imageSrc(path, page, inline);
    return `<figure class="${cls}">${s ? `<img src="${esc(s)}" loading="lazy">` : '<div class="missing">unreadable</div>'}<figcaption title="${esc(path)}">${esc(caption)}</figcaption></figure>`;
  };
  const rows: string[] = [];
  for (let i = 0; i < queries.length; i++) {
    const q = queries[i]!;
    const cells = [await cell(q, `query: ${q.split('/').pop()}`, 'query')];
    for (const n of results[i] ?? [])
      cells.push(await cell(n.path, `${n.score.toFixed(3)} ${n.path.split('/').pop()}`, 'hit'));
    rows.push(`<div class="row">${cells.join('')}</div>`);
  }
  const title = esc(o.title ?? 'moco search');
  writeTextAtomic(
    page,
    `<!doctype html>
<html><head><meta charset="utf-8"><title>${title}</title>
<style>
body{font:13px system-ui,sans-serif;margin:16px;background:#fafafa}
.row{display:flex;gap:8px;margin-bottom:14px;align-items:flex-start}
figure{margin:0;width:132px}
img{width:128px;height:128px;object-fit:contain;image-rendering:pixelated;background:#eee;border:2px solid #ddd}
.query img{border-color:#2a6ad8}
figcaption{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.missing{width:128px;height:128px;background:#fdd}
</style></head><body>
<h1>${title}</h1>
${rows.join('\n')}
</body></html>
`,
  );
}
