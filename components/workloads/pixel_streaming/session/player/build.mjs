// Builds the player page once per supported Unreal Engine version into dist/ue<version>/: the same page, bundled
// with the frontend library of that version (package.json names each as frontend-ue<version>). Each page loads
// its assets from ue<version>/assets/, so what a page runs never depends on anything but its own file.
import { build } from 'esbuild';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';

const versions = Object.keys(JSON.parse(await readFile('package.json', 'utf8')).dependencies)
  .filter((name) => name.startsWith('frontend-ue'))
  .map((name) => name.slice('frontend-ue'.length));

for (const version of versions) {
  const out = `dist/ue${version}`;
  await mkdir(`${out}/assets`, { recursive: true });
  await build({
    entryPoints: ['src/player.js'],
    bundle: true,
    format: 'esm',
    target: 'es2020',
    minify: true,
    legalComments: 'linked',
    alias: { '@pixelstream/frontend': `frontend-ue${version}` },
    define: { __UNREAL_VERSION__: JSON.stringify(version) },
    outfile: `${out}/assets/player.js`,
    logLevel: 'warning'
  });
  await copyFile('src/player.css', `${out}/assets/player.css`);
  const page = await readFile('index.html', 'utf8');
  await writeFile(`${out}/index.html`, page.replaceAll('"assets/', `"ue${version}/assets/`));
  console.log(`built ${out}`);
}
