// `/v1/search` over a LanceDB collection of `moco index`: the collection's ANN index (refined, exact cosine
// scores) or its flat scan; hits carry the row's id, which `/v1/thumbnail/:row` looks up.
import { Collection } from '../collections/table.js';
import { commonFolder } from '../data/common-folder.js';
import type { SearchBackend, SearchFilter, SearchHit } from './search-backend.js';

export class LanceBackend implements SearchBackend {
  readonly kind = 'lancedb';

  private constructor(
    private readonly coll: Collection,
    readonly size: number,
    readonly root: string,
  ) {}

  /**
   * Opens the collection at `uri`. Its root folder is found from the paths it holds (absolute, as `moco index`
   * stores them), so collections indexed before anything else was recorded are served the same way.
   */
  static async open(uri: string): Promise<LanceBackend> {
    const coll = await Collection.open(uri);
    try {
      const files = await coll.files();
      return new LanceBackend(coll, files.length, commonFolder(files.map((f) => f.path)));
    } catch (e) {
      coll.close();
      throw e;
    }
  }

  get source(): string {
    return this.coll.uri;
  }
  get dim(): number {
    return this.coll.dim;
  }
  get meta(): Record<string, unknown> {
    return { ...this.coll.meta };
  }

  async search(queries: Float32Array, top: number, filter: SearchFilter = {}): Promise<SearchHit[][]> {
    const hits = await this.coll.search(queries, { top, filter });
    return hits.map((hs) => hs.map((h) => ({ row: h.id, path: h.path, label: h.label, score: h.score })));
  }

  async path(row: number): Promise<string | undefined> {
    if (!Number.isSafeInteger(row) || row < 0) return undefined;
    return (await this.coll.byIds([row]))[0]?.path;
  }

  async close(): Promise<void> {
    this.coll.close();
  }
}
