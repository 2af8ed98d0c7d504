// Weights for detection: `moco export --format detectron2` unpickles in Python to exactly what MoCo's official
// detection/convert-pretrain-to-detectron2.py writes for the same checkpoint (names, dtypes, shapes, values,
// `__author__`, `matching_heuristics`); `--format mmdet` loads strictly into torchvision's ResNet-50; a CIFAR stem
// is refused; the pickle writer's arrays come back as numpy builds them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NdArray, pickleDumps } from '../../src/io/pickle-writer.js';
import { detectron2Name } from '../../src/io/detection.js';
import { interop } from '../helpers/interop.js';
import { runCli } from '../helpers/cli.js';
import { PYTHON, tmpDir } from '../helpers/pytorch.js';
import { execFileSync } from 'node:child_process';

let dir = '';
let moco = '';

before(() => {
  dir = tmpDir('moco-detectron2-');
  moco = join(dir, 'moco_v2_r50.pth.tar');
  interop('save-moco', 'resnet50', moco);
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs a Python script (with torch and numpy) and returns its stdout. */
function py(code: string, ...args: string[]): string {
  const f = join(dir, 'check.py');
  writeFileSync(f, code);
  return execFileSync(PYTHON, [f, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
}

async function mocoExport(...args: string[]): Promise<{ code: number | null; err: string }> {
  const r = await runCli(['export', ...args]).done;
  return { code: r.code, err: r.err };
}

// The body of the official converter (facebookresearch/moco, detection/convert-pretrain-to-detectron2.py),
// as a function of (input, output) instead of sys.argv, without its print.
const OFFICIAL = `
import pickle as pkl
import torch

def official(input, output):
    obj = torch.load(input, map_location="cpu")
    obj = obj["state_dict"]

    newmodel = {}
    for k, v in obj.items():
        if not k.startswith("module.encoder_q."):
            continue
        old_k = k
        k = k.replace("module.encoder_q.", "")
        if "layer" not in k:
            k = "stem." + k
        for t in [1, 2, 3, 4]:
            k = k.replace("layer{}".format(t), "res{}".format(t + 1))
        for t in [1, 2, 3]:
            k = k.replace("bn{}".format(t), "conv{}.norm".format(t))
        k = k.replace("downsample.0", "shortcut")
        k = k.replace("downsample.1", "shortcut.norm")
        newmodel[k] = v.numpy()

    res = {"model": newmodel, "__author__": "MOCO", "matching_heuristics": True}

    with open(output, "wb") as f:
        pkl.dump(res, f)
`;

test("--format detectron2 unpickles to the official converter's names and values", async () => {
  const ours = join(dir, 'ours.pkl');
  const r = await mocoExport(moco, '--format', 'detectron2', '--out', ours);
  assert.equal(r.code, 0, r.err);
  const out = py(
    `${OFFICIAL}
import sys, numpy as np
official(sys.argv[1], sys.argv[2] + ".official")
# As Detectron2's checkpointer reads a .pkl.
with open(sys.argv[2], "rb") as f:
    a = pkl.load(f, encoding="latin1")
with open(sys.argv[2] + ".official", "rb") as f:
    b = pkl.load(f, encoding="latin1")
assert type(a) is dict and sorted(a) == sorted(b), (sorted(a), sorted(b))
assert a["__author__"] == b["__author__"] and type(a["__author__"]) is str
assert a["matching_heuristics"] is True and b["matching_heuristics"] is True
ma, mb = a["model"], b["model"]
assert set(ma) == set(mb), (sorted(set(ma) ^ set(mb)))
assert list(ma) == list(mb), "order"
for k in mb:
    x, y = ma[k], mb[k]
    assert type(x) is np.ndarray, (k, type(x))
    assert x.dtype == y.dtype and x.shape == y.shape, (k, x.dtype, y.dtype, x.shape, y.shape)
    assert np.array_equal(x, y), k
    assert x.flags.c_contiguous and x.flags.writeable, k
for k in ["stem.conv1.weight", "stem.conv1.norm.running_var", "res2.0.conv1.weight", "res2.0.conv3.norm.bias",
          "res2.0.shortcut.weight", "res2.0.shortcut.norm.num_batches_tracked", "res5.2.conv2.norm.weight"]:
    assert k in ma, k
print(len(ma), ma["res2.0.shortcut.norm.num_batches_tracked"].dtype, ma["stem.conv1.weight"].shape)
`,
    moco,
    ours,
  );
  // ResNet-50: 318 backbone entries (53 convs; 53 BNs × 5 with num_batches_tracked) + MoCo v2's MLP head (4).
  assert.equal(out.trim(), '322 int64 (64, 3, 7, 7)');
});

test('detectron2Name follows the official string rules', () => {
  assert.equal(detectron2Name('conv1.weight'), 'stem.conv1.weight');
  assert.equal(detectron2Name('bn1.running_mean'), 'stem.conv1.norm.running_mean');
  assert.equal(detectron2Name('layer1.0.bn3.weight'), 'res2.0.conv3.norm.weight');
  assert.equal(detectron2Name('layer4.0.downsample.0.weight'), 'res5.0.shortcut.weight');
  assert.equal(detectron2Name('layer3.1.downsample.1.num_batches_tracked'), 'res4.1.shortcut.norm.num_batches_tracked');
  assert.equal(detectron2Name('fc.0.weight'), 'stem.fc.0.weight');
});

test('a CIFAR-stem model is refused for detectron2 and mmdet, naming the reason', async () => {
  const cifar = join(dir, 'cifar.pth');
  interop('save-tv', 'resnet18', cifar, 'zip', 'cifar');
  for (const format of ['detectron2', 'mmdet']) {
    const r = await mocoExport(cifar, '--format', format, '--out', join(dir, `cifar.${format}`));
    assert.notEqual(r.code, 0);
    assert.match(r.err, /conv1 is 3×3 \(a CIFAR stem\).*7×7/);
  }
});

test('--format mmdet: torch.load gives {state_dict, meta}, loading strictly into resnet50 less fc', async () => {
  const ours = join(dir, 'mmdet.pth');
  const r = await mocoExport(moco, '--format', 'mmdet', '--out', ours);
  assert.equal(r.code, 0, r.err);
  const out = py(
    `
import sys, torch, torchvision
ck = torch.load(sys.argv[2], map_location="cpu")
assert sorted(ck) == ["meta", "state_dict"], sorted(ck)
assert isinstance(ck["meta"], dict) and ck["meta"]["arch"] == "resnet50", ck["meta"]
sd = ck["state_dict"]
m = torchvision.models.resnet50()
m.fc = torch.nn.Identity()
m.load_state_dict(sd, strict=True)
ref = torch.load(sys.argv[1], map_location="cpu")["state_dict"]
for k, v in sd.items():
    w = ref["module.encoder_q." + k]
    assert v.dtype == w.dtype and torch.equal(v, w), k
print(len(sd))
`,
    moco,
    ours,
  );
  assert.equal(out.trim(), '318');
});

test("the pickle writer's numpy arrays and plain values come back as numpy and Python build them", () => {
  const f = join(dir, 'values.pkl');
  const bytes = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  writeFileSync(
    f,
    pickleDumps({
      f32: new NdArray('float32', [2, 3], bytes(Float32Array.from([0, 1, -2.5, 3e-8, Infinity, -0]))),
      f16: new NdArray('float16', [2], bytes(Uint16Array.from([0x3c00, 0xc000]))),
      i64: new NdArray('int64', [], bytes(BigInt64Array.from([-(2n ** 40n)]))),
      u8: new NdArray('uint8', [3], Uint8Array.from([0, 7, 255])),
      b: new NdArray('bool', [2], Uint8Array.from([1, 0])),
      empty: new NdArray('float32', [0, 4], new Uint8Array(0)),
      s: 'ünïcode',
      n: null,
      t: true,
      fl: false,
      i: 300,
      neg: -5,
      nested: new Map([['x', 1]]),
    }),
  );
  const out = py(
    `
import sys, pickle, numpy as np
with open(sys.argv[1], "rb") as f:
    d = pickle.load(f, encoding="latin1")
assert np.array_equal(d["f32"], np.array([[0, 1, -2.5], [3e-8, np.inf, -0.0]], np.float32))
assert d["f32"].dtype == np.float32 and np.signbit(d["f32"][1, 2])
assert np.array_equal(d["f16"], np.array([1, -2], np.float16)) and d["f16"].dtype == np.float16
assert d["i64"].shape == () and d["i64"] == -(2 ** 40) and d["i64"].dtype == np.int64
assert d["u8"].tolist() == [0, 7, 255] and d["u8"].dtype == np.uint8
assert d["b"].tolist() == [True, False] and d["b"].dtype == np.bool_
assert d["empty"].shape == (0, 4)
plain = (d["s"], d["n"], d["t"], d["fl"], d["i"], d["neg"], d["nested"])
assert plain == ("ünïcode", None, True, False, 300, -5, {"x": 1}), plain
print("ok")
`,
    f,
  );
  assert.equal(out.trim(), 'ok');
  assert.throws(() => pickleDumps({ x: new NdArray('bfloat16', [1], new Uint8Array(2)) }), /no bfloat16/);
});
