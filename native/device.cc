// Devices and precision: CUDA device selection, synchronisation and caching-allocator figures, per-device
// generator state, and autocast. Thin wrappers only; which device a rank uses and when to autocast is decided in
// TypeScript (src/torch/runtime.ts, src/torch/autocast.ts).
//
// CUDA-only calls compile in builds against a CUDA libtorch (MOCO_WITH_CUDA, set by scripts/find-libtorch); a
// CPU build answers them with an error that says so, never a crash.
#include "tensor.h"

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>

#ifdef MOCO_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

#include <mutex>
#include <string>

namespace moco {

namespace {

[[noreturn]] void NoCuda(Napi::Env env, const char* what) {
  throw Napi::Error::New(env, std::string(what) + ": this build of moco-ts has no CUDA (it was compiled against a CPU-only libtorch; rebuild against a CUDA PyTorch with LIBTORCH_USE_PYTORCH=1)");
}

// "cpu", "cuda" or "cuda:N" -> a c10::Device (c10 parses and validates the string).
c10::Device ParseDevice(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsString()) throw Napi::TypeError::New(env, std::string(what) + ": device must be a string such as 'cpu' or 'cuda:0'");
  MOCO_TRY
  return c10::Device(v.As<Napi::String>().Utf8Value());
  MOCO_CATCH(env, what)
  return c10::Device(c10::kCPU);
}

// cudaSetDevice(index): the current CUDA device of this process (what NCCL and new tensors on "cuda" use).
Napi::Value CudaSetDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MOCO_WITH_CUDA
  int64_t i = info[0].As<Napi::Number>().Int64Value();
  MOCO_TRY
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(i));
  MOCO_CATCH(env, "cudaSetDevice")
  return env.Undefined();
#else
  NoCuda(env, "cudaSetDevice");
#endif
}

// cudaSynchronize(): waits for all work queued on the current device (non-blocking copies included).
Napi::Value CudaSynchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MOCO_WITH_CUDA
  MOCO_TRY
  c10::cuda::device_synchronize();
  MOCO_CATCH(env, "cudaSynchronize")
  return env.Undefined();
#else
  NoCuda(env, "cudaSynchronize");
#endif
}

// cudaMemory(index) -> { allocated, reserved, peakAllocated, peakReserved } bytes of the caching allocator
// (torch.cuda.memory_allocated / memory_reserved / max_memory_*).
Napi::Value CudaMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MOCO_WITH_CUDA
  int64_t i = info[0].As<Napi::Number>().Int64Value();
  Napi::Object o = Napi::Object::New(env);
  MOCO_TRY
  auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(i));
  constexpr size_t kAggregate = 0;  // StatType::AGGREGATE, whose namespace moved between 1.13 and 2.x
  o.Set("allocated", Napi::Number::New(env, static_cast<double>(s.allocated_bytes[kAggregate].current)));
  o.Set("reserved", Napi::Number::New(env, static_cast<double>(s.reserved_bytes[kAggregate].current)));
  o.Set("peakAllocated", Napi::Number::New(env, static_cast<double>(s.allocated_bytes[kAggregate].peak)));
  o.Set("peakReserved", Napi::Number::New(env, static_cast<double>(s.reserved_bytes[kAggregate].peak)));
  MOCO_CATCH(env, "cudaMemory")
  return o;
#else
  NoCuda(env, "cudaMemory");
#endif
}

// getGeneratorState(device) -> uint8 tensor: the default generator of any device (CPU, cuda:N), for checkpoints.
Napi::Value GetGeneratorState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  c10::Device d = ParseDevice(env, info[0], "getGeneratorState");
  MOCO_TRY
  at::Generator gen = at::globalContext().defaultGenerator(d);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return WrapTensor(env, at::Tensor(gen.get_state()));
  MOCO_CATCH(env, "getGeneratorState")
  return env.Undefined();
}

Napi::Value SetGeneratorState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  c10::Device d = ParseDevice(env, info[0], "setGeneratorState");
  at::Tensor s = UnwrapTensor(env, info[1], "setGeneratorState state");
  MOCO_TRY
  at::Generator gen = at::globalContext().defaultGenerator(d);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(s);
  MOCO_CATCH(env, "setGeneratorState")
  return env.Undefined();
}

// ---------------------------------------------------------------- autocast
// The per-thread autocast switches of torch.autocast(device_type, dtype). The API took a device argument in 2.x.
bool AutocastEnabled(c10::DeviceType t) {
#if MOCO_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(t);
#else
  return t == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
#endif
}

at::ScalarType AutocastDtype(c10::DeviceType t) {
#if MOCO_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(t);
#else
  return t == c10::DeviceType::CPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
#endif
}

void SetAutocast(c10::DeviceType t, bool enabled, at::ScalarType dtype) {
#if MOCO_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(t, enabled);
  at::autocast::set_autocast_dtype(t, dtype);
#else
  if (t == c10::DeviceType::CPU) {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  } else {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  }
#endif
}

c10::DeviceType AutocastDeviceType(Napi::Env env, const Napi::Value& v) {
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "cpu") return c10::DeviceType::CPU;
  if (s == "cuda") return c10::DeviceType::CUDA;
  throw Napi::TypeError::New(env, "autocast: device type must be 'cpu' or 'cuda', got '" + s + "'");
}

// autocastEnter(deviceType, enabled, dtypeCode) -> { enabled, dtype }: the previous state, for autocastExit.
// As torch.autocast.__enter__: set the switch and dtype, count the nesting (the cast cache lives until the
// outermost region exits).
Napi::Value AutocastEnter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  c10::DeviceType t = AutocastDeviceType(env, info[0]);
  bool enabled = info[1].ToBoolean().Value();
  auto dtype = static_cast<at::ScalarType>(info[2].As<Napi::Number>().Int32Value());
  Napi::Object prev = Napi::Object::New(env);
  MOCO_TRY
  prev.Set("enabled", Napi::Boolean::New(env, AutocastEnabled(t)));
  prev.Set("dtype", Napi::Number::New(env, static_cast<int>(AutocastDtype(t))));
  SetAutocast(t, enabled, dtype);
  at::autocast::increment_nesting();
  MOCO_CATCH(env, "autocast")
  return prev;
}

// autocastExit(deviceType, prevEnabled, prevDtypeCode): as torch.autocast.__exit__.
Napi::Value AutocastExit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  c10::DeviceType t = AutocastDeviceType(env, info[0]);
  bool enabled = info[1].ToBoolean().Value();
  auto dtype = static_cast<at::ScalarType>(info[2].As<Napi::Number>().Int32Value());
  MOCO_TRY
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  SetAutocast(t, enabled, dtype);
  MOCO_CATCH(env, "autocast")
  return env.Undefined();
}

}  // namespace

void InitDevice(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaSetDevice", Napi::Function::New(env, CudaSetDevice));
  exports.Set("cudaSynchronize", Napi::Function::New(env, CudaSynchronize));
  exports.Set("cudaMemory", Napi::Function::New(env, CudaMemory));
  exports.Set("getGeneratorState", Napi::Function::New(env, GetGeneratorState));
  exports.Set("setGeneratorState", Napi::Function::New(env, SetGeneratorState));
  exports.Set("autocastEnter", Napi::Function::New(env, AutocastEnter));
  exports.Set("autocastExit", Napi::Function::New(env, AutocastExit));
}

}  // namespace moco
