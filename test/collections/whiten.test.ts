// PCA whitening fitted on a collection: the projected, normalised vectors equal a NumPy reference (eigh of the
// shrunk covariance, top components, the same sign convention) on the same inputs; without shrinkage the
// whitened training rows have identity covariance.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyWhitening, fitWhitening } from '../../src/collections/index.js';
import { tensor } from '../../src/torch/index.js';
import { assertClose, pytorch } from '../helpers/pytorch.js';

/** Anisotropic rows: a random mixing of coordinates with variances spread over four decades, plus an offset. */
function rows(n: number, d: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = (): number => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s + 0.5) / 2 ** 32;
  };
  const g = (): number => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  const mix = Float64Array.from({ length: d * d }, g);
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const z = Array.from({ length: d }, (_, j) => g() * 10 ** ((-2 * j) / d));
    for (let k = 0; k < d; k++) {
      let v = 3 + 0.5 * k;
      for (let j = 0; j < d; j++) v += mix[k * d + j]! * z[j]!;
      out[i * d + k] = v;
    }
  }
  return out;
}

const NUMPY = `
import numpy as np
X = x.numpy().astype(np.float64); Q = q.numpy().astype(np.float64)
a = float(alpha.numpy()[0]); k = int(dims.numpy()[0]); d = X.shape[1]
mu = X.mean(0); C = np.cov(X - mu, rowvar=False)
C = (1 - a) * C + a * np.trace(C) / d * np.eye(d)
lam, U = np.linalg.eigh(C)
lam, U = lam[::-1][:k], U[:, ::-1][:, :k]
U = U * np.where(U[np.abs(U).argmax(0), np.arange(k)] < 0, -1.0, 1.0)
P = (U / np.sqrt(lam)).T
Y = (Q - mu) @ P.T; Y /= np.linalg.norm(Y, axis=1, keepdims=True)
O['y'] = torch.from_numpy(Y.astype(np.float32))
O['lam'] = torch.from_numpy(lam.astype(np.float32))
W = (X - mu) @ P.T
O['cov'] = torch.from_numpy(np.cov(W, rowvar=False).astype(np.float64))
`;

test('fitWhitening/applyWhitening equal a NumPy reference (shrinkage, top components); unshrunk output is white', () => {
  const d = 24;
  const x = rows(400, d, 7);
  const q = rows(50, d, 11);
  for (const [alpha, k, block] of [
    [0.2, 10, 64],
    [0, d, undefined],
  ] as const) {
    // Blocks of 64 rows (400 = 6·64 + 16) for the first case: the blocked accumulation must not change the result.
    const w = fitWhitening(x, d, { shrinkage: alpha, dims: k, blockRows: block });
    assert.equal(w.outDim, k);
    const y = applyWhitening(w, q, block === undefined ? undefined : 7);
    const ref = pytorch(NUMPY, {
      x: tensor(x, { shape: [400, d] }),
      q: tensor(q, { shape: [50, d] }),
      alpha: tensor(new Float32Array([alpha])),
      dims: tensor(new Int32Array([k])),
    });
    assertClose(tensor(w.eigenvalues), ref.lam!, `eigenvalues α=${alpha}`, { rtol: 1e-4, atol: 1e-9 });
    assertClose(tensor(y, { shape: [50, k] }), ref.y!, `whitened queries α=${alpha} k=${k}`, {
      rtol: 1e-3,
      atol: 2e-4,
    });
    if (alpha === 0)
      assertClose(
        ref.cov!,
        tensor(
          Float64Array.from({ length: k * k }, (_, i) => Number(i % (k + 1) === 0)),
          { shape: [k, k] },
        ),
        'whitened covariance',
        { rtol: 0, atol: 1e-6 },
      );
  }
  assert.throws(() => fitWhitening(x, d, { shrinkage: 1.5 }), /shrinkage/);
  assert.throws(() => fitWhitening(x, d, { dims: 0 }), /dims/);
});
