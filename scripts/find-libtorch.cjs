#!/usr/bin/env node
// Locates libtorch for binding.gyp. Prints one gyp list for the field asked: include | libdir | libs | cflags | ldflags.
// Order: LIBTORCH (a libtorch zip's root or a pip wheel's torch/ folder; LIBTORCH_INCLUDE / LIBTORCH_LIB override), LIBTORCH_USE_PYTORCH=1
// (ask python3's torch), then the Debian/Ubuntu libtorch-dev layout. Nothing is downloaded.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

function fail(msg) {
  process.stderr.write(
    `\nmoco-ts: ${msg}\n` +
      'libtorch was not found. Provide it in one of three ways:\n' +
      '  1. LIBTORCH=/path/to/libtorch   (the root of a libtorch zip from pytorch.org, or a pip wheel\'s site-packages/torch; LIBTORCH_INCLUDE / LIBTORCH_LIB override its include and lib dirs)\n' +
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
    // A libtorch zip's root or a pip wheel's torch/ folder: both hold include/ and lib/.
    return { includes: [inc, path.join(inc, 'torch/csrc/api/include')], lib, source: `LIBTORCH=${root}`, root };
  }
  if (process.env.LIBTORCH_USE_PYTORCH === '1') {
    // A pip/conda PyTorch is a complete libtorch (torch/include, torch/lib). Ask only what torch itself knows:
    // no torch.utils.cpp_extension, which needs setuptools.
    const py = process.env.PYTHON || 'python3';
    let out;
    try {
      out = execFileSync(py, ['-c', 'import os, torch; print(os.path.dirname(torch.__file__)); print(torch.__version__); print(int(torch._C._GLIBCXX_USE_CXX11_ABI))'], { encoding: 'utf8' });
    } catch (e) {
      fail(`LIBTORCH_USE_PYTORCH=1 but \`${py} -c "import torch"\` failed: ${e.message}`);
    }
    const [root, version, abi] = out.trim().split('\n');
    const inc = path.join(root, 'include');
    return { includes: [inc, path.join(inc, 'torch/csrc/api/include')], lib: path.join(root, 'lib'), source: `${py}'s torch ${version}`, root, abi: Number(abi) };
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
  if (found.abi === 0 || found.abi === 1) return found.abi;
  const bytes = fs.readFileSync(path.join(found.lib, 'libc10.so')).toString('latin1');
  return bytes.includes('St7__cxx11') ? 1 : 0;
}
const abi = cxx11Abi();

// The version the headers declare (torch/version.h), which decides the C++ standard they need.
function torchVersion() {
  // 2.x keeps the defines in torch/headeronly/version.h (torch/version.h includes it); 1.x in torch/version.h.
  const candidates = [path.join(found.includes[0], 'torch/headeronly/version.h'), ...found.includes.map((d) => path.join(d, 'torch/version.h'))];
  const h = candidates.find((f) => fs.existsSync(f) && /#define TORCH_VERSION_MAJOR \d+/.test(fs.readFileSync(f, 'utf8'))) ?? candidates[1];
  const text = fs.existsSync(h) ? fs.readFileSync(h, 'utf8') : '';
  const num = (name) => Number((text.match(new RegExp(`#define ${name} (\\d+)`)) || [])[1] ?? NaN);
  const major = num('TORCH_VERSION_MAJOR');
  const minor = num('TORCH_VERSION_MINOR');
  if (!Number.isFinite(major) || !Number.isFinite(minor)) fail(`${found.source}: cannot read TORCH_VERSION_MAJOR/MINOR from ${h}.`);
  return { major, minor, text: `${major}.${minor}` };
}
const version = torchVersion();
// The C++ standard libtorch's headers were built for: TorchConfig.cmake's CXX_STANDARD (20 in 2.13's wheel, 14
// in Debian's 1.13), never below the C++17 the addon itself is written in. Without the file, 2.x means C++20.
function cxxStandard() {
  const configs = [
    found.root && path.join(found.root, 'share/cmake/Torch/TorchConfig.cmake'),
    path.join(found.lib, 'cmake/Torch/TorchConfig.cmake'),
    path.join(path.dirname(found.lib), 'share/cmake/Torch/TorchConfig.cmake'),
  ].filter(Boolean);
  const config = configs.find((f) => fs.existsSync(f));
  const declared = config && Number((fs.readFileSync(config, 'utf8').match(/CXX_STANDARD (\d+)/) || [])[1]);
  const std = declared || (version.major >= 2 ? 20 : 17);
  return `c++${Math.max(17, std)}`;
}
const cxxStd = cxxStandard();
const hasCuda = fs.existsSync(path.join(found.lib, 'libtorch_cuda.so'));

// CUDA and NCCL headers: a CUDA pip wheel ships them as nvidia/<lib>/include beside torch/; a toolkit install
// under $CUDA_HOME. NCCL support is a build flag decided here, not a __has_include guess in the sources.
function cudaIncludes() {
  if (!hasCuda) return [];
  const dirs = [];
  if (found.root) {
    const nvidia = path.join(path.dirname(found.root), 'nvidia');
    if (fs.existsSync(nvidia)) for (const d of fs.readdirSync(nvidia).sort()) {
      const inc = path.join(nvidia, d, 'include');
      if (fs.existsSync(inc)) dirs.push(inc);
    }
  }
  for (const home of [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda']) {
    if (home && fs.existsSync(path.join(home, 'include'))) { dirs.push(path.join(home, 'include')); break; }
  }
  return dirs;
}
const extraIncludes = cudaIncludes();
const hasNccl = hasCuda && extraIncludes.some((d) => fs.existsSync(path.join(d, 'nccl.h')));

const field = process.argv[2];
const q = (s) => (/[\s"]/.test(s) ? JSON.stringify(s) : s);
switch (field) {
  case 'include':
    // gyp asks for the include dirs first: say once, on stderr, what the build uses.
    process.stderr.write(`moco-ts: building against libtorch ${version.text} from ${found.source} (${found.lib}; ${cxxStd}, cxx11 ABI ${abi}, CUDA ${hasCuda ? 'yes' : 'no'}, NCCL ${hasNccl ? 'yes' : 'no'})\n`);
    console.log([...found.includes, ...extraIncludes].map(q).join(' '));
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
    console.log([`-std=${cxxStd}`, `-D_GLIBCXX_USE_CXX11_ABI=${abi}`, ...(hasCuda ? ['-DMOCO_WITH_CUDA=1'] : []), ...(hasNccl ? ['-DMOCO_WITH_NCCL=1'] : [])].join(' '));
    break;
  case 'ldflags':
    console.log([`-L${q(found.lib)}`, `-Wl,-rpath,${q(found.lib)}`].join(' '));
    break;
  case 'describe':
    console.log(JSON.stringify({ ...found, version: version.text, std: cxxStd, cxx11Abi: abi, cuda: hasCuda, nccl: hasNccl, extraIncludes }));
    break;
  default:
    process.stderr.write('usage: find-libtorch include|libdir|libs|cflags|ldflags|describe\n');
    process.exit(2);
}
