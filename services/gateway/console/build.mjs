// Bundles the console into dist/: index.html and assets/app.{js,css} (+ source maps).
// The gateway serves `/` from dist/index.html and `/assets/<file>` from dist/assets.
import * as esbuild from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');

try {
  rmSync(dist, { recursive: true, force: true });
  mkdirSync(join(dist, 'assets'), { recursive: true });
  // main.ts imports its CSS (ours and xterm's): esbuild writes it as app.css beside app.js.
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: { app: 'src/main.ts' },
    outdir: join(dist, 'assets'),
    bundle: true,
    format: 'iife',
    target: ['es2020'],
    minify: true,
    sourcemap: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  if (result.errors.length > 0) throw new Error(`${result.errors.length} build errors`);
  copyFileSync(join(root, 'src', 'index.html'), join(dist, 'index.html'));
  console.log('built dist/index.html, dist/assets/app.js, dist/assets/app.css');
} catch (e) {
  console.error('console build failed:', e instanceof Error ? e.message : e);
  process.exit(1);
}
