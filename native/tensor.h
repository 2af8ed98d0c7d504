// What the addon's translation units share: the JS Tensor wrapper's accessors, and the distributed module's init.
// addon.cc defines the Tensor ObjectWrap; other units (dist.cc, image.cc) reach tensors only through these two functions.
#pragma once
#include <napi.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/version.h>

#include <optional>

// libtorch ≥ 2.3 changed a few interfaces the addon implements or names; one tree builds on 1.13 and on 2.x.
#define MOCO_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// Converts any C++ exception into a JS exception carrying libtorch's message.
#define MOCO_TRY try {
#define MOCO_CATCH(env, label)                                                                   \
  }                                                                                             \
  catch (const Napi::Error&) {                                                                  \
    throw;                                                                                      \
  }                                                                                             \
  catch (const c10::Error& e) {                                                                 \
    throw Napi::Error::New(env, std::string(label) + ": " + e.what_without_backtrace());         \
  }                                                                                             \
  catch (const std::exception& e) {                                                             \
    throw Napi::Error::New(env, std::string(label) + ": " + e.what());                          \
  }

namespace moco {

// c10::optional is std::optional on libtorch 2.x (and deprecated there); 1.13 has its own.
#if MOCO_TORCH_AT_LEAST(2, 0)
template <class T>
using optional = std::optional<T>;
inline constexpr std::nullopt_t nullopt = std::nullopt;
#else
template <class T>
using optional = c10::optional<T>;
inline constexpr c10::nullopt_t nullopt = c10::nullopt;
#endif

// The at::Tensor held by a JS NativeTensor; throws a JS TypeError naming `what` if v is not a live tensor.
at::Tensor& UnwrapTensor(Napi::Env env, const Napi::Value& v, const char* what);

// A new JS NativeTensor owning t (counted in memory(), reported to V8 like every other tensor).
Napi::Object WrapTensor(Napi::Env env, at::Tensor t);

// Adds the c10d surface (stores, process groups, collectives) to the addon's exports. Defined in dist.cc.
void InitDist(Napi::Env env, Napi::Object exports);

// Adds the image kernels (photometric augmentation ops) to the addon's exports. Defined in image.cc.
void InitImage(Napi::Env env, Napi::Object exports);

// Adds devices (CUDA selection, sync, allocator figures), per-device generator state and autocast. Defined in device.cc.
void InitDevice(Napi::Env env, Napi::Object exports);

}  // namespace moco
