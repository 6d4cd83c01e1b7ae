// Copies the parts of the installed front-end packages the platform serves into dist/ (not committed):
//   dist/dsfr/   the State design system (CSS, JS, Marianne fonts, icons, favicon)
//   dist/docs/   Swagger UI and ReDoc for the /<service>/docs and /<service>/redoc pages
//   dist/axe/    axe-core, injected by the browser tests
//   dist/map/    the outlines of the 101 départements, read from @gouvfr/dsfr-chart's map component
//   dist/manifest.json  the version of each package (the pages put it in their asset URLs)
// Run after `npm ci`; it needs nothing but Node and node_modules/.
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, 'node_modules');
const out = join(here, 'dist');

function version(name) {
  return JSON.parse(readFileSync(join(modules, name, 'package.json'), 'utf8')).version;
}

function copy(from, to) {
  mkdirSync(dirname(join(out, to)), { recursive: true });
  cpSync(join(modules, from), join(out, to), { recursive: true });
}

// The map component draws metropolitan France as one SVG (viewBox 0 0 1010 1010) with one path per
// département (class "FR-<code>"), and each overseas département as a small SVG of its own.
function mapGeometry() {
  const source = readFileSync(join(modules, '@gouvfr/dsfr-chart/dist/MapChart/MapChart.js'), 'utf8');
  const metropole = {};
  const metro = /class: "FR-([0-9][0-9AB])",\s*style: [^\n]*\n\s*d: "([^"]+)"/g;
  for (const match of source.matchAll(metro)) metropole[match[1]] ??= match[2];
  const outremer = {};
  const overseas = /viewBox: "(0 0 [0-9.]+ [0-9.]+)"\s*\}[^]*?class: "FR-(97[0-9])",\s*d: "([^"]+)"/g;
  for (const match of source.matchAll(overseas)) outremer[match[2]] ??= { viewBox: match[1], path: match[3] };
  const viewBox = /viewBox = "(0 0 1010 1010)"/.exec(source);
  const found = Object.keys(metropole).length + Object.keys(outremer).length;
  if (found !== 101 || !viewBox) {
    throw new Error(`@gouvfr/dsfr-chart ${version('@gouvfr/dsfr-chart')}: found ${found} département outlines, expected 101`);
  }
  return { source: `@gouvfr/dsfr-chart ${version('@gouvfr/dsfr-chart')}`, metropole: { viewBox: viewBox[1], departements: metropole }, outremer };
}

rmSync(out, { recursive: true, force: true });
const dsfr = '@gouvfr/dsfr/dist';
for (const file of ['dsfr.min.css', 'dsfr.module.min.js', 'dsfr.nomodule.min.js', 'fonts', 'icons', 'favicon', 'utility/icons/icons.min.css']) {
  copy(`${dsfr}/${file}`, `dsfr/${file}`);
}
copy('swagger-ui-dist/swagger-ui-bundle.js', 'docs/swagger-ui-bundle.js');
copy('swagger-ui-dist/swagger-ui.css', 'docs/swagger-ui.css');
copy('swagger-ui-dist/favicon-32x32.png', 'docs/favicon-32x32.png');
copy('redoc/bundles/redoc.standalone.js', 'docs/redoc.standalone.js');
copy('axe-core/axe.min.js', 'axe/axe.min.js');
mkdirSync(join(out, 'map'), { recursive: true });
writeFileSync(join(out, 'map', 'france.json'), JSON.stringify(mapGeometry()));
const packages = ['@gouvfr/dsfr', '@gouvfr/dsfr-chart', 'swagger-ui-dist', 'redoc', 'axe-core'];
writeFileSync(join(out, 'manifest.json'), JSON.stringify(Object.fromEntries(packages.map((p) => [p, version(p)])), null, 1) + '\n');
console.log(`front-end assets written to ${out}`);
