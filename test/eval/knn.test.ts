// kNN classifier vs the MoCo colab's knn_predict, in PyTorch, on the same features.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, dispose, manualSeed, randint, randn, tidy } from '../../src/torch/index.js';
import { knnClassify, knnScores } from '../../src/eval/knn.js';
import { assertClose, pytorch } from '../helpers/pytorch.js';

const KNN_PREDICT = `
def knn_predict(feature, feature_bank, feature_labels, classes, knn_k, knn_t):
    sim_matrix = torch.mm(feature, feature_bank)
    sim_weight, sim_indices = sim_matrix.topk(k=knn_k, dim=-1)
    sim_labels = torch.gather(feature_labels.expand(feature.size(0), -1), dim=-1, index=sim_indices)
    sim_weight = (sim_weight / knn_t).exp()
    one_hot_label = torch.zeros(feature.size(0) * knn_k, classes, device=sim_labels.device)
    one_hot_label = one_hot_label.scatter(dim=-1, index=sim_labels.view(-1, 1), value=1.0)
    pred_scores = torch.sum(one_hot_label.view(feature.size(0), -1, classes) * sim_weight.unsqueeze(dim=-1), dim=1)
    pred_labels = pred_scores.argsort(dim=-1, descending=True)
    return pred_scores, pred_labels
`;

test('knnClassify equals the colab knn_predict (scores, top-1, top-5, per class)', () => {
  manualSeed(3);
  const C = 10;
  const [bank, bankLabels, queries, queryLabels] = tidy(() => {
    const yb = randint(0, C, [600]);
    const yq = randint(0, C, [250]);
    // Features with some class structure, so accuracies are neither 0 nor 100.
    const centres = randn([C, 32]);
    const b = F.normalize(centres.indexSelect(0, yb).add(randn([600, 32]).mul(1.5)), { dim: 1 });
    const q = F.normalize(centres.indexSelect(0, yq).add(randn([250, 32]).mul(1.5)), { dim: 1 });
    return [b, yb, q, yq];
  });
  for (const [k, t] of [
    [200, 0.1],
    [20, 0.07],
    [1, 0.5],
  ] as const) {
    const ref = pytorch(
      `${KNN_PREDICT}
s, p = knn_predict(q, b.t().contiguous(), yb, ${C}, ${k}, ${t})
O['scores'] = s
O['top1'] = (p[:, 0] == yq).float().mean().reshape(1) * 100
O['top5'] = (p[:, :5] == yq.unsqueeze(1)).any(1).float().mean().reshape(1) * 100
O['pred'] = p[:, 0].contiguous()
`,
      { b: bank, yb: bankLabels, q: queries, yq: queryLabels },
    );
    const scores = knnScores(queries, bank, bankLabels, C, k, t);
    assertClose(scores, ref.scores!, `scores k=${k}`, { rtol: 1e-4, atol: 1e-4 });
    const r = knnClassify(bank, bankLabels, queries, queryLabels, { k, t, chunk: 64 });
    assert.ok(Math.abs(r.top1 - ref.top1!.item()) < 1e-3, `top1 ${r.top1} vs ${ref.top1!.item()}`);
    assert.ok(Math.abs(r.top5 - ref.top5!.item()) < 1e-3, `top5 ${r.top5} vs ${ref.top5!.item()}`);
    assert.deepEqual(Array.from(r.predictions), ref.pred!.toArray());
    const truth = queryLabels.toArray();
    for (let c = 0; c < C; c++) {
      const idx = truth.flatMap((y, i) => (y === c ? [i] : []));
      const acc = (100 * idx.filter((i) => r.predictions[i] === c).length) / idx.length;
      assert.ok(Math.abs(r.perClass[c]! - acc) < 1e-9, `class ${c}`);
    }
    assert.equal(
      r.confusion.flat().reduce((a, b) => a + b, 0),
      250,
    );
    dispose([scores, ref]);
  }
  dispose([bank, bankLabels, queries, queryLabels]);
});
