// What a user of the published package gets: `npm pack` (the built dist/, without running `prepare` again), the
// tarball installed into a new project with a plain `npm i` (npm's cache reused; the registry must be reachable,
// else the test is skipped saying so), then in that project: the library imported by name (it writes a random
// width-8 CIFAR-stem ResNet-18), `npx moco --version`, and `npx moco serve` on that checkpoint answering one
// POST /v1/embed with a unit vector. Also what the install must not do: warn EBADENGINE, or need
// onnxruntime-node; and what the tarball must hold: LICENSE, and the sources its source maps name.
// README's "Install as a package" section and docs/install.md describe exactly this.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import sharp from 'sharp';
import { repoRoot, tmpDir } from '../helpers/pytorch.js';

/** The environment of a user's shell: no npm_* variables from an `npm test` that runs this file. */
function userEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
}

function run(cmd: string, args: string[], cwd: string, timeoutMs: number): { code: number | null; out: string } {
  const r = spawnSync(cmd, args, {
    cwd,
    env: userEnv(),
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 64 * 2 ** 20,
  });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? `\n${r.error.message}` : ''}` };
}

test(
  'npm pack, npm i the tarball in a new project: the library, npx moco --version, npx moco serve + POST /v1/embed',
  { timeout: 10 * 60_000 },
  async (t) => {
    const ping = run('npm', ['ping'], tmpDir('moco-ping-'), 30_000);
    if (ping.code !== 0) {
      t.skip(
        `the npm registry is not reachable (npm ping: ${ping.out.trim().split('\n').pop()}); a consumer install needs it`,
      );
      return;
    }
    const root = repoRoot();
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    const dir = tmpDir('moco-consumer-');
    const started = Date.now();
    const lap = (what: string): void => t.diagnostic(`${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    try {
      // dist/ is already built (npm test's pretest); --ignore-scripts skips `prepare`'s second tsc.
      const packed = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], root, 120_000);
      assert.equal(packed.code, 0, packed.out);
      const info = JSON.parse(packed.out.slice(packed.out.indexOf('['))) as {
        filename: string;
        files: { path: string }[];
      }[];
      const tgz = join(dir, info[0]!.filename);
      const shipped = new Set(info[0]!.files.map((f) => f.path));
      assert.ok(shipped.has('LICENSE'), 'the tarball holds LICENSE');
      // Every source map names sources that ship beside it.
      const dangling: string[] = [];
      for (const f of shipped) {
        if (!f.endsWith('.js.map')) continue;
        const map = JSON.parse(readFileSync(join(root, f), 'utf8')) as { sources: string[] };
        for (const s of map.sources) {
          const target = join(dirname(f), s).replaceAll('\\', '/');
          if (!shipped.has(target)) dangling.push(`${f} -> ${target}`);
        }
      }
      assert.deepEqual(
        dangling.slice(0, 5),
        [],
        `${dangling.length} source map entries point at files the tarball lacks`,
      );
      lap('packed');

      const app = join(dir, 'app');
      spawnSync('mkdir', [app]);
      writeFileSync(
        join(app, 'package.json'),
        JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }),
      );
      const inst = run('npm', ['i', tgz, '--no-audit', '--no-fund', '--prefer-offline'], app, 8 * 60_000);
      assert.equal(inst.code, 0, `npm i ${tgz}:\n${inst.out}`);
      assert.doesNotMatch(inst.out, /EBADENGINE/, `the install warns about an engine:\n${inst.out}`);
      const mod = join(app, 'node_modules');
      assert.ok(
        existsSync(join(mod, 'moco-ts', 'build', 'Release', 'moco_native.node')),
        `the addon was not built:\n${inst.out}`,
      );
      assert.equal(
        existsSync(join(mod, 'onnxruntime-node')),
        false,
        'onnxruntime-node is not installed for a consumer',
      );
      lap('installed');

      // The library, imported by its name from the consumer's project.
      writeFileSync(
        join(app, 'make-model.js'),
        [
          "import { models, torch, saveSafetensors } from 'moco-ts';",
          'torch.manualSeed(7);',
          "const m = models.createModel('resnet18', { cifarStem: true, width: 8 });",
          "saveSafetensors('tiny.safetensors', m.stateDict());",
          '',
        ].join('\n'),
      );
      const made = run(process.execPath, ['make-model.js'], app, 120_000);
      assert.equal(made.code, 0, made.out);

      const version = run('npx', ['moco', '--version'], app, 120_000);
      assert.equal(version.code, 0, version.out);
      assert.equal(version.out.trim(), pkg.version);

      // npx moco serve: its own process group, so that the signal reaches the server under npx.
      const server = spawn('npx', ['moco', 'serve', '--pretrained', 'tiny.safetensors', '--port', '0'], {
        cwd: app,
        env: userEnv(),
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      let err = '';
      const exited = new Promise<number | null>((r) => server.on('exit', (code) => r(code)));
      try {
        const base = await new Promise<string>((res, rej) => {
          const timer = setTimeout(() => rej(new Error(`moco serve was not ready in 120 s:\n${err}`)), 120_000);
          server.stderr!.on('data', (d: Buffer) => {
            err += d.toString();
            const m = /listening on (http:\/\/\S+)[\s\S]*moco serve: ready/.exec(err);
            if (m) {
              clearTimeout(timer);
              res(m[1]!);
            }
          });
          void exited.then((code) => {
            clearTimeout(timer);
            rej(new Error(`moco serve exited (${code}):\n${err}`));
          });
        });
        assert.match(err, /on libtorch/, 'a checkpoint is served by libtorch');
        const png = await sharp({
          create: { width: 40, height: 30, channels: 3, background: { r: 200, g: 40, b: 90 } },
        })
          .png()
          .toBuffer();
        const r = await fetch(`${base}/v1/embed`, {
          method: 'POST',
          headers: { 'content-type': 'image/png' },
          body: png,
        });
        const body = await r.text();
        assert.equal(r.status, 200, body);
        const { dim, vectors } = JSON.parse(body) as { dim: number; vectors: number[][] };
        assert.equal(dim, 64);
        assert.equal(vectors.length, 1);
        assert.equal(vectors[0]!.length, 64);
        const norm = Math.hypot(...vectors[0]!);
        assert.ok(Math.abs(norm - 1) < 1e-4, `a unit vector, norm ${norm}`);
        lap('served one /v1/embed');
      } finally {
        if (server.exitCode === null) process.kill(-server.pid!, 'SIGTERM');
        await exited;
      }
    } finally {
      rmSync(resolve(dir), { recursive: true, force: true });
    }
  },
);
