// ESLint's flat config: the recommended JavaScript and typescript-eslint rules over the TypeScript sources, tests,
// benchmarks and examples; formatting is Prettier's (.prettierrc.json), not ESLint's.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', 'src/views/web/vendor/', '**/*.cjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // `_`-prefixed names are deliberate (destructuring a field away, an unused callback parameter).
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          caughtErrors: 'none',
        },
      ],
    },
  },
  {
    // Tests read JSON responses loosely.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // The browser page's script: a module run by the browser, with onnxruntime-web's global `ort`.
    files: ['src/views/web/**/*.js'],
    languageOptions: { sourceType: 'module', globals: { ...globals.browser, ort: 'readonly' } },
  },
);
