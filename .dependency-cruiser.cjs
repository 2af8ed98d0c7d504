// The layers of src/ (DESIGN: imports point down only): a folder may import its own layer and the ones listed
// before it, never one after it. `npm run lint:layers` (part of `npm test`) fails on a back edge or a cycle.
const LAYERS = [
  ['torch'],
  ['nn', 'io'],
  ['models', 'optim', 'data', 'dist'],
  ['moco'],
  ['loop'],
  ['eval'],
  ['train'],
  ['collections'],
  ['serve'],
  ['views'],
  ['cli'],
];

const above = (i) => LAYERS.slice(i + 1).flat();
const layerRules = LAYERS.flatMap((folders, i) => (above(i).length === 0 ? [] : [{
  name: `layers-${folders.join('-')}`,
  comment: `${folders.join(', ')} may not import ${above(i).join(', ')} (a later layer)`,
  severity: 'error',
  from: { path: `^src/(${folders.join('|')})/` },
  to: { path: `^src/(${above(i).join('|')})/` },
}]));

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'no-circular',
      comment: 'modules that import each other, directly or through others',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'library-not-cli',
      comment: 'nothing imports the command line',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/cli/' },
      to: { path: '^src/cli/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(dist|node_modules)/' },
  },
};
