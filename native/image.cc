// moco-ts native binding, image part. Two CPU kernels: PIL's bilinear crop+resize of decoded pixels (below), and
// one that runs a per-sample list of photometric image operations
// (torchvision's tensor definitions of brightness, contrast, saturation, hue, grayscale and Gaussian blur; PIL's
// solarize on the 8-bit image) and
// the final normalisation, in one visit of each image.
//
// Why native: composed from ATen ops, the same list costs ~30 passes over each image with a fresh allocation per
// intermediate, plus gathers of the samples that share an op; at 224×224 that was 3.6 ms per view, more than
// decoding the JPEG. Here each op is one tight loop over an image held in a per-thread scratch buffer that
// stays in cache. The kernel knows image operations only; which ops a view gets, in which order and with which
// factors is decided in TypeScript (src/data/augment.ts). CUDA tensors keep the ATen composition.
// The pixel loops are written to be vectorised: -O2 (the addon's default) leaves most of them scalar, and with
// trapping math GCC will not turn the hue's selects into vector blends (these loops never test FP flags).
#pragma GCC optimize("O3", "no-trapping-math")

#include <napi.h>

#include "tensor.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace moco {
namespace {

enum Opcode : int { kNoop = 0, kBrightness = 1, kContrast = 2, kSaturation = 3, kHue = 4, kGrayscale = 5, kBlur = 6, kSolarize = 7 };

// ITU-R 601-2 luma, as torchvision's rgb_to_grayscale.
inline float Luma(float r, float g, float b) { return 0.2989f * r + 0.587f * g + 0.114f * b; }
inline float Clamp01(float v) { return std::min(std::max(v, 0.f), 1.f); }

// torchvision _blend: clamp(ratio·x + (1 − ratio)·other, 0, 1), other constant.
void BlendConst(float* __restrict p, int64_t n, float ratio, float other) {
  const float o = (1.f - ratio) * other;
  for (int64_t i = 0; i < n; i++) p[i] = Clamp01(ratio * p[i] + o);
}

void Brightness(float* r, float* g, float* b, int64_t n, float f) {
  BlendConst(r, n, f, 0.f);
  BlendConst(g, n, f, 0.f);
  BlendConst(b, n, f, 0.f);
}

void Contrast(float* r, float* g, float* b, int64_t n, float f) {
  double sum = 0;
  for (int64_t i = 0; i < n; i++) sum += Luma(r[i], g[i], b[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  BlendConst(r, n, f, mean);
  BlendConst(g, n, f, mean);
  BlendConst(b, n, f, mean);
}

void Saturation(float* __restrict r, float* __restrict g, float* __restrict b, int64_t n, float f) {
  const float w = 1.f - f;
  for (int64_t i = 0; i < n; i++) {
    const float l = Luma(r[i], g[i], b[i]);
    r[i] = Clamp01(f * r[i] + w * l);
    g[i] = Clamp01(f * g[i] + w * l);
    b[i] = Clamp01(f * b[i] + w * l);
  }
}

inline float Select(bool c, float a, float b) { return c ? a : b; }

// torchvision adjust_hue: _rgb2hsv, h ← (h + f) mod 1, _hsv2rgb — the same arithmetic per pixel, with every
// candidate computed and then selected (torchvision's masks), so that the loop vectorises. Floors of
// non-negative values are integer truncations: inlined without SSE4.1's roundps.
void Hue(float* __restrict r, float* __restrict g, float* __restrict b, int64_t n, float f) {
  for (int64_t i = 0; i < n; i++) {
    const float R = r[i], G = g[i], B = b[i];
    const float maxc = std::max(R, std::max(G, B));
    const float minc = std::min(R, std::min(G, B));
    const bool eqc = maxc == minc;
    const float cr = maxc - minc;
    const float s = cr / Select(eqc, 1.f, maxc);
    const float crd = Select(eqc, 1.f, cr);
    const float rc = (maxc - R) / crd, gc = (maxc - G) / crd, bc = (maxc - B) / crd;
    const float hr = bc - gc, hg = 2.f + rc - bc, hb = 4.f + gc - rc;
    const float hgb = Select(maxc == G, hg, hb);
    float h = Select(maxc == R, hr, hgb);
    h = h / 6.f + 1.f;                                // > 0
    h = h - static_cast<float>(static_cast<int>(h));  // fmod(h, 1)
    h = h + f + 1.f;                                  // > 0 for |f| ≤ 0.5
    h = h - static_cast<float>(static_cast<int>(h));  // torch.remainder(h + f, 1.0)
    const float v = maxc;
    const float h6 = h * 6.f;
    const float fl = static_cast<float>(static_cast<int>(h6));
    const float fr = h6 - fl;
    const float p = Clamp01(v * (1.f - s));
    const float q = Clamp01(v * (1.f - s * fr));
    const float t = Clamp01(v * (1.f - s * (1.f - fr)));
    // Sectors 0..5 of _hsv2rgb: R = v q p p t v, G = t v v q p p, B = p p t v v q.
    const float r45 = Select(fl == 4.f, t, v), r3 = Select(fl <= 3.f, p, r45), r1 = Select(fl == 1.f, q, r3);
    r[i] = Select(fl == 0.f, v, r1);
    const float g3 = Select(fl == 3.f, q, p), g2 = Select(fl <= 2.f, v, g3);
    g[i] = Select(fl == 0.f, t, g2);
    const float b4 = Select(fl <= 4.f, v, q), b2 = Select(fl == 2.f, t, b4);
    b[i] = Select(fl <= 1.f, p, b2);
  }
}

void Grayscale(float* __restrict r, float* __restrict g, float* __restrict b, int64_t n) {
  for (int64_t i = 0; i < n; i++) r[i] = g[i] = b[i] = Luma(r[i], g[i], b[i]);
}

// PIL's ImageOps.solarize(img, threshold) at this point of a PIL pipeline, where the image is 8-bit: each value
// is quantised to v = round(255·x) (half up, as PIL stores its ops' results), and v ≥ threshold becomes 255 − v;
// the result is v / 255 (so an image read from uint8 gives PIL's values exactly). Truncation of a non-negative
// value is the floor, inlined so that the loop vectorises.
void Solarize(float* __restrict p, int64_t n, float threshold) {
  for (int64_t i = 0; i < n; i++) {
    const float v = static_cast<float>(static_cast<int32_t>(Clamp01(p[i]) * 255.f + 0.5f));
    p[i] = Select(v >= threshold, 255.f - v, v) / 255.f;
  }
}

// torchvision _get_gaussian_kernel1d, in float32 as torch computes it.
std::vector<float> GaussianKernel(int k, float sigma) {
  std::vector<float> w(k);
  const float half = (k - 1) * 0.5f;
  float sum = 0.f;
  for (int i = 0; i < k; i++) {
    const float x = k == 1 ? 0.f : -half + (2.f * half * static_cast<float>(i)) / static_cast<float>(k - 1);
    const float z = x / sigma;
    w[i] = std::exp(-0.5f * z * z);
    sum += w[i];
  }
  for (int i = 0; i < k; i++) w[i] /= sum;
  return w;
}

inline int64_t Reflect(int64_t i, int64_t n) { return i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i); }

// Separable Gaussian blur of one H×W plane with reflect padding; `row` (W + k − 1) and `tmp` (H·W) are scratch.
void BlurPlane(float* __restrict p, int64_t H, int64_t W, const std::vector<float>& w, float* __restrict row, float* __restrict tmp) {
  const int64_t k = static_cast<int64_t>(w.size()), half = (k - 1) / 2;
  for (int64_t y = 0; y < H; y++) {
    const float* src = p + y * W;
    for (int64_t x = 0; x < W + k - 1; x++) row[x] = src[Reflect(x - half, W)];
    float* dst = tmp + y * W;
    for (int64_t x = 0; x < W; x++) dst[x] = w[0] * row[x];
    for (int64_t j = 1; j < k; j++) {
      const float wj = w[j];
      const float* s = row + j;
      for (int64_t x = 0; x < W; x++) dst[x] += wj * s[x];
    }
  }
  for (int64_t y = 0; y < H; y++) {
    float* dst = p + y * W;
    const float* s0 = tmp + Reflect(y - half, H) * W;
    for (int64_t x = 0; x < W; x++) dst[x] = w[0] * s0[x];
    for (int64_t j = 1; j < k; j++) {
      const float wj = w[j];
      const float* s = tmp + Reflect(y + j - half, H) * W;
      for (int64_t x = 0; x < W; x++) dst[x] += wj * s[x];
    }
  }
}

// photometric(input, scale, program, steps, mean, std, out)
//   input: uint8 N×H×W×3 (decoded pixels, channels last) or float32 N×3×H×W, contiguous, CPU; pixels × scale
//          must be in [0, 1].
//   program: Float32Array of N·steps·3 numbers, per sample `steps` triples (opcode, a, b):
//          1 brightness(a) 2 contrast(a) 3 saturation(a) 4 hue(a) 5 grayscale 6 blur(σ = a, kernel size b)
//          7 solarize(threshold a, in 0..255 units), 0 none.
//   out: float32 N×3×H×W contiguous CPU (may be the input): ((x − mean) / std) after the ops.
Napi::Value Photometric(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 7) throw Napi::TypeError::New(env, "photometric: expected 7 arguments");
  at::Tensor& in = UnwrapTensor(env, info[0], "photometric: input");
  const float scale = info[1].As<Napi::Number>().FloatValue();
  if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(env, "photometric: program must be a Float32Array");
  Napi::Float32Array prog = info[2].As<Napi::Float32Array>();
  const int64_t steps = info[3].As<Napi::Number>().Int64Value();
  Napi::Array meanA = info[4].As<Napi::Array>(), stdA = info[5].As<Napi::Array>();
  at::Tensor& out = UnwrapTensor(env, info[6], "photometric: out");

  const bool hwc = in.scalar_type() == at::kByte;
  if (!in.device().is_cpu() || !out.device().is_cpu()) throw Napi::Error::New(env, "photometric: CPU tensors only (CUDA batches use the ATen path)");
  if (!in.is_contiguous() || !out.is_contiguous()) throw Napi::Error::New(env, "photometric: input and out must be contiguous");
  if (!hwc && in.scalar_type() != at::kFloat) throw Napi::Error::New(env, "photometric: input must be uint8 N×H×W×3 or float32 N×3×H×W");
  if (out.scalar_type() != at::kFloat || out.dim() != 4 || out.size(1) != 3) throw Napi::Error::New(env, "photometric: out must be float32 N×3×H×W");
  const int64_t N = out.size(0), H = out.size(2), W = out.size(3);
  const bool shapeOk = in.dim() == 4 && in.size(0) == N &&
                       (hwc ? (in.size(1) == H && in.size(2) == W && in.size(3) == 3) : (in.size(1) == 3 && in.size(2) == H && in.size(3) == W));
  if (!shapeOk) throw Napi::Error::New(env, "photometric: input shape does not match out (uint8 N×H×W×3 or float32 N×3×H×W)");
  if (steps < 0 || static_cast<int64_t>(prog.ElementLength()) != N * steps * 3)
    throw Napi::Error::New(env, "photometric: program length must be N·steps·3 = " + std::to_string(N * steps * 3) + ", got " + std::to_string(prog.ElementLength()));
  if (meanA.Length() != 3 || stdA.Length() != 3) throw Napi::Error::New(env, "photometric: mean and std need 3 values");
  float mean[3], stdv[3];
  for (uint32_t c = 0; c < 3; c++) {
    mean[c] = meanA.Get(c).As<Napi::Number>().FloatValue();
    const float s = stdA.Get(c).As<Napi::Number>().FloatValue();
    if (!(s > 0.f)) throw Napi::Error::New(env, "photometric: std must be > 0");
    stdv[c] = s;
  }
  const float* P = prog.Data();
  for (int64_t i = 0; i < N * steps; i++) {
    const int opc = static_cast<int>(P[i * 3]);
    if (opc < kNoop || opc > kSolarize) throw Napi::Error::New(env, "photometric: unknown opcode " + std::to_string(opc));
    if (opc == kHue && !(std::fabs(P[i * 3 + 1]) <= 0.5f))
      throw Napi::Error::New(env, "photometric: hue factor must be in [-0.5, 0.5], got " + std::to_string(P[i * 3 + 1]));
    if (opc == kSolarize && !std::isfinite(P[i * 3 + 1]))
      throw Napi::Error::New(env, "photometric: solarize threshold must be finite, got " + std::to_string(P[i * 3 + 1]));
    if (opc == kBlur) {
      const int k = static_cast<int>(P[i * 3 + 2]);
      if (k < 1 || k % 2 == 0 || (k - 1) / 2 >= std::min(H, W) || !(P[i * 3 + 1] > 0.f))
        throw Napi::Error::New(env, "photometric: blur needs σ > 0 and an odd kernel size < 2·min(H, W), got σ " +
                                        std::to_string(P[i * 3 + 1]) + ", size " + std::to_string(k));
    }
  }

  const uint8_t* in8 = hwc ? in.data_ptr<uint8_t>() : nullptr;
  const float* inF = hwc ? nullptr : in.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const int64_t plane = H * W;
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> img(3 * plane), tmp(plane), row(W + 2 * std::min(H, W));
    for (int64_t s = begin; s < end; s++) {
      float *r = img.data(), *g = r + plane, *b = g + plane;
      if (hwc) {
        const uint8_t* __restrict src = in8 + s * plane * 3;
        for (int64_t i = 0; i < plane; i++) {
          r[i] = src[3 * i] * scale;
          g[i] = src[3 * i + 1] * scale;
          b[i] = src[3 * i + 2] * scale;
        }
      } else {
        const float* src = inF + s * plane * 3;
        for (int64_t i = 0; i < 3 * plane; i++) img[i] = src[i] * scale;
      }
      for (int64_t st = 0; st < steps; st++) {
        const float* o = P + (s * steps + st) * 3;
        switch (static_cast<int>(o[0])) {
          case kBrightness: Brightness(r, g, b, plane, o[1]); break;
          case kContrast: Contrast(r, g, b, plane, o[1]); break;
          case kSaturation: Saturation(r, g, b, plane, o[1]); break;
          case kHue: Hue(r, g, b, plane, o[1]); break;
          case kGrayscale: Grayscale(r, g, b, plane); break;
          case kBlur: {
            const std::vector<float> w = GaussianKernel(static_cast<int>(o[2]), o[1]);
            for (int c = 0; c < 3; c++) BlurPlane(img.data() + c * plane, H, W, w, row.data(), tmp.data());
            break;
          }
          case kSolarize: Solarize(img.data(), 3 * plane, o[1]); break;
          default: break;
        }
      }
      float* d = dst + s * plane * 3;
      for (int c = 0; c < 3; c++) {
        const float m = mean[c], is = 1.f / stdv[c];
        const float* __restrict p = img.data() + c * plane;
        float* __restrict q = d + c * plane;
        for (int64_t i = 0; i < plane; i++) q[i] = (p[i] - m) * is;
      }
    }
  });
  return env.Undefined();
}

// ---------------------------------------------------------------- crop + resize (PIL's bilinear resample)
// torchvision's RandomResizedCrop on a PIL image is img.crop(box).resize((S, S), BILINEAR): PIL's separable
// resample with a triangle filter widened by the downscale factor (antialiased), 8-bit fixed-point weights,
// horizontal pass first, rounded to uint8, then vertical. Reproduced here operation for operation, so views
// decoded from files match the reference pipeline's pixels; sharp's resize (a different filter) did not, and
// cost ~1.4 ms of CPU a 224-px view against ~0.3 ms here.
constexpr int kPrecisionBits = 32 - 8 - 2;

struct Taps {
  std::vector<int> first, count;  // per output pixel: first input index and number of taps
  std::vector<int32_t> w;         // count ≤ stride weights per output pixel
  int stride = 0;
};

inline float Triangle(float x) {
  x = x < 0 ? -x : x;
  return x < 1.f ? 1.f - x : 0.f;
}

// Taps over input [0, in) of the crop for `out` output pixels (PIL precompute_coeffs + normalize_coeffs_8bpc).
Taps PrecomputeTaps(int in, int out) {
  Taps t;
  const double scale = static_cast<double>(in) / out;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 1.0 * filterscale;
  t.stride = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out);
  t.count.resize(out);
  t.w.assign(static_cast<size_t>(out) * t.stride, 0);
  std::vector<double> k(t.stride);
  for (int xx = 0; xx < out; xx++) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in) xmax = in;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; x++) {
      const double w = Triangle(static_cast<float>((x + xmin - center + 0.5) * ss));
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; x++) {
      const double v = ww != 0.0 ? k[x] / ww : k[x];
      t.w[static_cast<size_t>(xx) * t.stride + x] = static_cast<int32_t>(v < 0 ? std::trunc(-0.5 + v * (1 << kPrecisionBits)) : std::trunc(0.5 + v * (1 << kPrecisionBits)));
    }
    t.first[xx] = xmin;
    t.count[xx] = xmax;
  }
  return t;
}

inline uint8_t Clip8(int32_t v) {
  v >>= kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// One crop+resize request: the views of one decoded image.
struct CropJob {
  const uint8_t* in = nullptr;
  int W = 0, H = 0, S = 0;
  std::vector<int32_t> boxes;  // (left, top, width, height) a view
  std::vector<uint8_t> flips;
  std::vector<uint8_t*> outs;  // where each view's S×S×3 bytes go

  void Run() const {
    for (size_t v = 0; v < flips.size(); v++) {
      const int32_t* b = boxes.data() + v * 4;
      const int left = b[0], top = b[1], cw = b[2], ch = b[3];
      uint8_t* out = outs[v];
      const bool flip = flips[v] != 0;
      const Taps tx = PrecomputeTaps(cw, S), ty = PrecomputeTaps(ch, S);
      // Horizontal pass over the rows the vertical pass reads.
      const int y0 = ty.first[0], y1 = ty.first[S - 1] + ty.count[S - 1];
      std::vector<uint8_t> mid(static_cast<size_t>(y1 - y0) * S * 3);
      for (int y = y0; y < y1; y++) {
        const uint8_t* row = in + (static_cast<int64_t>(top + y) * W + left) * 3;
        uint8_t* m = mid.data() + static_cast<size_t>(y - y0) * S * 3;
        for (int xx = 0; xx < S; xx++) {
          const int32_t* k = tx.w.data() + static_cast<size_t>(xx) * tx.stride;
          const uint8_t* p = row + tx.first[xx] * 3;
          int32_t r = 1 << (kPrecisionBits - 1), g = r, bl = r;
          for (int x = 0; x < tx.count[xx]; x++) {
            r += p[3 * x] * k[x];
            g += p[3 * x + 1] * k[x];
            bl += p[3 * x + 2] * k[x];
          }
          m[3 * xx] = Clip8(r);
          m[3 * xx + 1] = Clip8(g);
          m[3 * xx + 2] = Clip8(bl);
        }
      }
      for (int yy = 0; yy < S; yy++) {
        const int32_t* k = ty.w.data() + static_cast<size_t>(yy) * ty.stride;
        uint8_t* o = out + static_cast<int64_t>(yy) * S * 3;
        for (int xx = 0; xx < S; xx++) {
          int32_t r = 1 << (kPrecisionBits - 1), g = r, bl = r;
          for (int y = 0; y < ty.count[yy]; y++) {
            const uint8_t* p = mid.data() + (static_cast<size_t>(ty.first[yy] - y0 + y) * S + xx) * 3;
            r += p[0] * k[y];
            g += p[1] * k[y];
            bl += p[2] * k[y];
          }
          const int ox = flip ? S - 1 - xx : xx;
          o[3 * ox] = Clip8(r);
          o[3 * ox + 1] = Clip8(g);
          o[3 * ox + 2] = Clip8(bl);
        }
      }
    }
  }
};

// Runs a CropJob on libuv's thread pool (beside sharp's decodes) and settles a Promise; holds the typed arrays.
class CropResizeWorker : public Napi::AsyncWorker {
 public:
  CropResizeWorker(Napi::Env env, CropJob job, Napi::Uint8Array src, Napi::Uint8Array dst)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), job_(std::move(job)),
        src_(Napi::Persistent(src)), dst_(Napi::Persistent(dst)) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }
  void Execute() override { job_.Run(); }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  CropJob job_;
  Napi::Reference<Napi::Uint8Array> src_, dst_;
};

// cropResize(src, width, height, boxes, flips, size, dst, offsets) → Promise<void>
//   src: Uint8Array, RGB rows (height × width × 3); boxes: Int32Array of V (left, top, width, height) inside it;
//   flips: Uint8Array of V (mirror the output horizontally); dst: Uint8Array receiving V size×size×3 views
//   at byte offsets `offsets` (Array of V numbers). Arguments are checked at once (a throw); the work runs in
//   libuv's pool. Neither array may be modified until the Promise settles.
Napi::Value CropResize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 8) throw Napi::TypeError::New(env, "cropResize: expected 8 arguments");
  auto typed = [&](int i, napi_typedarray_type type, const char* what) {
    if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != type)
      throw Napi::TypeError::New(env, std::string("cropResize: ") + what);
  };
  typed(0, napi_uint8_array, "src must be a Uint8Array");
  typed(3, napi_int32_array, "boxes must be an Int32Array");
  typed(4, napi_uint8_array, "flips must be a Uint8Array");
  typed(6, napi_uint8_array, "dst must be a Uint8Array");
  Napi::Uint8Array src = info[0].As<Napi::Uint8Array>();
  Napi::Int32Array boxes = info[3].As<Napi::Int32Array>();
  Napi::Uint8Array flips = info[4].As<Napi::Uint8Array>();
  Napi::Uint8Array dst = info[6].As<Napi::Uint8Array>();
  Napi::Array offsets = info[7].As<Napi::Array>();
  CropJob job;
  job.W = info[1].As<Napi::Number>().Int32Value();
  job.H = info[2].As<Napi::Number>().Int32Value();
  job.S = info[5].As<Napi::Number>().Int32Value();
  const int W = job.W, H = job.H, S = job.S;
  if (W < 1 || H < 1 || static_cast<int64_t>(src.ElementLength()) != static_cast<int64_t>(W) * H * 3)
    throw Napi::Error::New(env, "cropResize: src must hold width × height × 3 bytes");
  if (S < 1) throw Napi::Error::New(env, "cropResize: size must be ≥ 1");
  const size_t V = flips.ElementLength();
  if (boxes.ElementLength() != V * 4 || offsets.Length() != V) throw Napi::Error::New(env, "cropResize: boxes (4 a view), flips and offsets disagree on the number of views");
  const int64_t viewBytes = static_cast<int64_t>(S) * S * 3;
  for (size_t v = 0; v < V; v++) {
    const int32_t* b = boxes.Data() + v * 4;
    if (b[0] < 0 || b[1] < 0 || b[2] < 1 || b[3] < 1 || b[0] + b[2] > W || b[1] + b[3] > H)
      throw Napi::Error::New(env, "cropResize: box " + std::to_string(v) + " (" + std::to_string(b[0]) + ", " + std::to_string(b[1]) + ", " +
                                      std::to_string(b[2]) + "×" + std::to_string(b[3]) + ") is not inside the " + std::to_string(W) + "×" + std::to_string(H) + " image");
    const int64_t off = offsets.Get(static_cast<uint32_t>(v)).As<Napi::Number>().Int64Value();
    if (off < 0 || off + viewBytes > static_cast<int64_t>(dst.ElementLength())) throw Napi::Error::New(env, "cropResize: offset " + std::to_string(off) + " is outside dst");
    job.outs.push_back(dst.Data() + off);
  }
  job.in = src.Data();
  job.boxes.assign(boxes.Data(), boxes.Data() + V * 4);
  job.flips.assign(flips.Data(), flips.Data() + V);
  auto* w = new CropResizeWorker(env, std::move(job), src, dst);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace

void InitImage(Napi::Env env, Napi::Object exports) {
  exports.Set("cropResize", Napi::Function::New(env, CropResize));
  exports.Set("photometric", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    try {
      return Photometric(info);
    } catch (const Napi::Error&) {
      throw;
    } catch (const c10::Error& e) {
      throw Napi::Error::New(info.Env(), std::string("photometric: ") + e.what_without_backtrace());
    }
  }));
}

}  // namespace moco
