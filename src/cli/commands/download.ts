// `--download` (pretrain, knn, lincls): fetch the CIFAR release named by the data argument before it is opened.
import { CIFAR_URL, downloadCifar, parseCifarSpec } from '../../data/index.js';

/** The help text of the flag, the same in every command. */
export const DOWNLOAD_HELP =
  'with cifar10:DIR / cifar100:DIR: download and extract the official binary release into DIR unless it is there';

/**
 * Downloads the CIFAR release of a `cifar10:DIR` / `cifar100:DIR` data spec unless it is already extracted there
 * (then nothing is printed); any other spec is an error. Progress goes to stderr, prefixed `moco <cmd>:`.
 */
export async function downloadData(spec: string, cmd: string): Promise<void> {
  const c = parseCifarSpec(spec);
  if (!c) throw new Error(`--download works with cifar10:DIR or cifar100:DIR, not '${spec}'`);
  const tag = `moco ${cmd}`;
  const mb = (n: number): string => (n / 1e6).toFixed(1);
  let shown = -1;
  let fetched = false;
  const dir = await downloadCifar(c.root, c.variant, {
    onProgress: (bytes, total) => {
      if (!fetched) {
        fetched = true;
        process.stderr.write(
          `${tag}: downloading ${CIFAR_URL[c.variant]}${total ? ` (${mb(total)} MB)` : ''} into ${c.root}\n`,
        );
      }
      // A rewritten line on a terminal; otherwise a line every 10% (every 16 MB when the size is unknown).
      const step = process.stderr.isTTY ? 1e6 : total ? total / 10 : 16e6;
      const k = Math.floor(bytes / step);
      if (bytes === 0 || (k === shown && bytes !== total)) return;
      shown = k;
      const text = `${tag}: ${mb(bytes)}${total ? `/${mb(total)} MB (${Math.floor((100 * bytes) / total)}%)` : ' MB'}`;
      process.stderr.write(process.stderr.isTTY ? `\r${text}` : `${text}\n`);
    },
  }).finally(() => {
    if (shown !== -1 && process.stderr.isTTY) process.stderr.write('\n'); // end the rewritten line, also before an error
  });
  if (fetched) process.stderr.write(`${tag}: CIFAR-${c.variant} extracted to ${dir}\n`);
}
