#!/usr/bin/env node
// Locates libtorch for binding.gyp. Prints one gyp list for the field asked: include | libdir | libs | cflags | ldflags.
// Order: LIBTORCH (a libtorch zip's root; LIBTORCH_INCLUDE / LIBTORCH_LIB override), LIBTORCH_USE_PYTORCH=1
// (ask python3's torch), then the Debian/Ubuntu libtorch-dev layout. Nothing is downloaded.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

function fail(msg) {
  process.stderr.write(
    `\nmoco-ts: ${msg}\n` +
      'libtorch was not found. Provide it in one of three ways:\n' +
      '  1. LIBTORCH=/path/to/libtorch   (the root of a libtorch zip from pytorch.org; LIBTORCH_INCLUDE / LIBTORCH_LIB override its include and lib dirs)\n' +
      '  2. LIBTORCH_USE_PYTORCH=1       (use the libtorch inside the PyTorch that `python3 -c "import torch"` finds)\n' +
      '  3. apt-get install libtorch-dev (Debian 12 / Ubuntu packages)\n\n',
  );
  process.exit(1);
}

function multiarch() {
  try {
    return execFileSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).trim() || 'x86_64-linux-gnu';
  } catch {
    return `${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`;
  }
}

function locate() {
  if (process.env.LIBTORCH) {
    const root = process.env.LIBTORCH;
    const inc = process.env.LIBTORCH_INCLUDE || path.join(root, 'include');
    const lib = process.env.LIBTORCH_LIB || path.join(root, 'lib');
    return { includes: [inc, path.join(inc, 'torch/csrc/api/include')], lib, source: `LIBTORCH=${root}` };
  }
  if (process.env.LIBTORCH_USE_PYTORCH === '1') {
    const py = process.env.PYTHON || 'python3';
    let out;
    try {
      out = execFileSync(py, ['-c', 'import torch, torch.utils.cpp_extension as c; print(c.include_paths()[0]); print(c.library_paths()[0])'], { encoding: 'utf8' });
    } catch (e) {
      fail(`LIBTORCH_USE_PYTORCH=1 but \`${py} -c "import torch"\` failed: ${e.message}`);
    }
    const [inc, lib] = out.trim().split('\n');
    return { includes: [inc, path.join(inc, 'torch/csrc/api/include')], lib, source: `${py}'s torch` };
  }
  const lib = `/usr/lib/${multiarch()}`;
  const inc = '/usr/include';
  if (fs.existsSync(path.join(inc, 'torch/csrc/api/include/torch/torch.h')) && fs.existsSync(path.join(lib, 'libtorch.so'))) {
    return { includes: [inc, path.join(inc, 'torch/csrc/api/include')], lib, source: 'libtorch-dev' };
  }
  fail('none of LIBTORCH, LIBTORCH_USE_PYTORCH=1 or the libtorch-dev package is available.');
}

const found = locate();
for (const f of ['libtorch.so', 'libc10.so']) {
  if (!fs.existsSync(path.join(found.lib, f))) fail(`${found.source}: ${path.join(found.lib, f)} does not exist.`);
}
if (!fs.existsSync(path.join(found.includes[1], 'torch/torch.h')) && !fs.existsSync(path.join(found.includes[0], 'ATen/ATen.h'))) {
  fail(`${found.source}: no ATen/ATen.h under ${found.includes[0]}.`);
}

// libtorch builds differ in the C++ ABI; the addon must match the one libc10.so was built with.
function cxx11Abi() {
  const bytes = fs.readFileSync(path.join(found.lib, 'libc10.so')).toString('latin1');
  return bytes.includes('St7__cxx11') ? 1 : 0;
}
const hasCuda = fs.existsSync(path.join(found.lib, 'libtorch_cuda.so'));

const field = process.argv[2];
const q = (s) => (/[\s"]/.test(s) ? JSON.stringify(s) : s);
switch (field) {
  case 'include':
    console.log(found.includes.map(q).join(' '));
    break;
  case 'libdir':
    console.log(q(found.lib));
    break;
  case 'libs': {
    const libs = ['-ltorch', '-ltorch_cpu', '-lc10'];
    if (hasCuda) libs.push('-Wl,--no-as-needed', '-ltorch_cuda', '-lc10_cuda', '-Wl,--as-needed');
    console.log(libs.join(' '));
    break;
  }
  case 'cflags':
    console.log([`-D_GLIBCXX_USE_CXX11_ABI=${cxx11Abi()}`, ...(hasCuda ? ['-DMOCO_WITH_CUDA=1'] : [])].join(' '));
    break;
  case 'ldflags':
    console.log([`-L${q(found.lib)}`, `-Wl,-rpath,${q(found.lib)}`].join(' '));
    break;
  case 'describe':
    console.log(JSON.stringify({ ...found, cxx11Abi: cxx11Abi(), cuda: hasCuda }));
    break;
  default:
    process.stderr.write('usage: find-libtorch include|libdir|libs|cflags|ldflags|describe\n');
    process.exit(2);
}
