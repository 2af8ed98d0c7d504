// What the addon's translation units share: the JS Tensor wrapper's accessors, and the distributed module's init.
// addon.cc defines the Tensor ObjectWrap; other units (dist.cc, image.cc) reach tensors only through these two functions.
#pragma once
#include <napi.h>

#include <ATen/ATen.h>

namespace moco {

// The at::Tensor held by a JS NativeTensor; throws a JS TypeError naming `what` if v is not a live tensor.
at::Tensor& UnwrapTensor(Napi::Env env, const Napi::Value& v, const char* what);

// A new JS NativeTensor owning t (counted in memory(), reported to V8 like every other tensor).
Napi::Object WrapTensor(Napi::Env env, at::Tensor t);

// Adds the c10d surface (stores, process groups, collectives) to the addon's exports. Defined in dist.cc.
void InitDist(Napi::Env env, Napi::Object exports);

// Adds the image kernels (photometric augmentation ops) to the addon's exports. Defined in image.cc.
void InitImage(Napi::Env env, Napi::Object exports);

}  // namespace moco
