// moco-ts native binding: a thin Node-API face of libtorch.
//
// Holds no model or training logic. Tensors are wrapped one-to-one; every ATen operator is reached
// through the c10 dispatcher by its schema name ("aten::conv2d"), so autograd, CPU/CUDA dispatch and
// argument defaults are exactly PyTorch's. TypeScript (src/torch/) gives the operators their typed names.
#include <napi.h>

#include "tensor.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/cuda.h>
#include <torch/version.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>


namespace moco {

// ---------------------------------------------------------------- accounting
std::atomic<int64_t> g_live_tensors{0};
std::atomic<int64_t> g_live_bytes{0};       // host memory (CPU tensors); what V8 is told about
std::atomic<int64_t> g_live_cuda_bytes{0};  // device memory: never reported to V8, whose heap it is not

// Bytes created minus bytes freed since V8 was last told. Reported in large steps only: a training step
// allocates and frees hundreds of MB, and telling V8 of each tensor makes it run full GCs on the cores the
// step computes on (measured: ~10% of a ResNet step). Tensors that JS leaks still reach V8 in time.
thread_local int64_t t_unreported_bytes = 0;
constexpr int64_t kReportStep = 256LL << 20;

void report_external(napi_env env, int64_t delta) {
  t_unreported_bytes += delta;
  if (env != nullptr && (t_unreported_bytes >= kReportStep || t_unreported_bytes <= -kReportStep)) {
    Napi::MemoryManagement::AdjustExternalMemory(env, t_unreported_bytes);
    t_unreported_bytes = 0;
  }
}

int64_t tensor_bytes(const at::Tensor& t) {
  if (!t.defined()) return 0;
  return static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
}

// ---------------------------------------------------------------- CPU allocator
// libtorch's default CPU allocator calls posix_memalign(64) and free for every tensor. Two things go wrong
// under a JS front end:
// - A JS wrapper's small native objects live until V8 collects them, between tensors that dispose() already
//   freed; glibc cannot fit an aligned request into such a hole, so a loop of same-sized tensors grows the heap
//   until the next GC. Plain malloc with the alignment done by hand gives every tensor of one size the same
//   chunk size, so freed holes are reused.
// - Large blocks go back to the kernel on free (mmap'd, or trimmed off the heap top) and fault in again on the
//   next step: a ResNet backward pass spent a third of its time in page faults. Blocks of 1 MiB and more are
//   therefore kept on free, by exact size, and handed out again (training steps repeat the same shapes), up to
//   kCacheCap bytes; beyond that they are freed as usual.
constexpr size_t kAlign = 64;
constexpr size_t kHeader = 2 * sizeof(void*);  // the malloc'd base and the requested size, below the data
constexpr size_t kCacheMin = size_t{1} << 20;
constexpr size_t kCacheCap = size_t{2} << 30;

std::mutex g_cache_mutex;
std::unordered_map<size_t, std::vector<void*>> g_cache;
size_t g_cached_bytes = 0;

void free_aligned(void* data) {
  if (data == nullptr) return;
  size_t n = static_cast<size_t*>(data)[-2];
  if (n >= kCacheMin) {
    std::lock_guard<std::mutex> lock(g_cache_mutex);
    if (g_cached_bytes + n <= kCacheCap) {
      g_cache[n].push_back(data);
      g_cached_bytes += n;
      return;
    }
  }
  std::free(static_cast<void**>(data)[-1]);
}

struct ReusingCPUAllocator final : at::Allocator {
#if MOCO_TORCH_AT_LEAST(2, 3)
  at::DataPtr allocate(size_t n) override {
#else
  at::DataPtr allocate(size_t n) const override {
#endif
    if (n >= kCacheMin) {
      std::lock_guard<std::mutex> lock(g_cache_mutex);
      auto it = g_cache.find(n);
      if (it != g_cache.end() && !it->second.empty()) {
        void* data = it->second.back();
        it->second.pop_back();
        g_cached_bytes -= n;
        return {data, data, &free_aligned, at::Device(at::DeviceType::CPU)};
      }
    }
    void* base = std::malloc(n + kHeader + kAlign);
    if (base == nullptr) {
      TORCH_CHECK(false, "DefaultCPUAllocator: not enough memory: you tried to allocate ", n, " bytes.");
    }
    auto addr = reinterpret_cast<uintptr_t>(base) + kHeader;
    void* data = reinterpret_cast<void*>((addr + kAlign - 1) & ~static_cast<uintptr_t>(kAlign - 1));
    static_cast<void**>(data)[-1] = base;
    static_cast<size_t*>(data)[-2] = n;
    return {data, data, &free_aligned, at::Device(at::DeviceType::CPU)};
  }
  at::DeleterFnPtr raw_deleter() const override { return &free_aligned; }
#if MOCO_TORCH_AT_LEAST(2, 3)
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#endif
};
ReusingCPUAllocator g_cpu_allocator;

// ---------------------------------------------------------------- Tensor wrapper
class Tensor : public Napi::ObjectWrap<Tensor> {
 public:
  // One constructor per Node environment (main thread and each worker thread load the addon anew).
  static Napi::FunctionReference* ctor(Napi::Env env) { return env.GetInstanceData<Napi::FunctionReference>(); }

  static Napi::Function Init(Napi::Env env) {
    Napi::Function f = DefineClass(env, "NativeTensor",
                                   {
                                       InstanceMethod("shape", &Tensor::Shape),
                                       InstanceMethod("strides", &Tensor::Strides),
                                       InstanceMethod("dtype", &Tensor::Dtype),
                                       InstanceMethod("device", &Tensor::Device),
                                       InstanceMethod("numel", &Tensor::Numel),
                                       InstanceMethod("dim", &Tensor::Dim),
                                       InstanceMethod("requiresGrad", &Tensor::RequiresGrad),
                                       InstanceMethod("isLeaf", &Tensor::IsLeaf),
                                       InstanceMethod("gradFn", &Tensor::GradFn),
                                       InstanceMethod("isContiguous", &Tensor::IsContiguous),
                                       InstanceMethod("isDisposed", &Tensor::IsDisposed),
                                       InstanceMethod("dispose", &Tensor::Dispose),
                                       InstanceMethod("dataPtr", &Tensor::DataPtr),
                                   });
    env.SetInstanceData<Napi::FunctionReference>(new Napi::FunctionReference(Napi::Persistent(f)));
    return f;
  }

  static Napi::Object Wrap(Napi::Env env, at::Tensor t) {
    Napi::Object o = ctor(env)->New({});
    Tensor* w = Tensor::Unwrap(o);
    w->set(env, std::move(t));
    return o;
  }

  static at::Tensor& Get(Napi::Env env, const Napi::Value& v, const char* what) {
    if (!Is(env, v)) {
      throw Napi::TypeError::New(env, std::string(what) + ": expected a Tensor");
    }
    Tensor* w = Tensor::Unwrap(v.As<Napi::Object>());
    if (!w->t_.defined()) {
      throw Napi::Error::New(env, std::string(what) + ": tensor was used after dispose()");
    }
    return w->t_;
  }

  static bool Is(Napi::Env env, const Napi::Value& v) {
    return v.IsObject() && v.As<Napi::Object>().InstanceOf(ctor(env)->Value());
  }

  explicit Tensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Tensor>(info) {}

  ~Tensor() override { release(nullptr); }

 private:
  at::Tensor t_;
  int64_t bytes_ = 0;
  bool cuda_ = false;

  void set(Napi::Env env, at::Tensor t) {
    t_ = std::move(t);
    bytes_ = tensor_bytes(t_);
    cuda_ = t_.defined() && t_.is_cuda();
    g_live_tensors++;
    if (cuda_) {
      g_live_cuda_bytes += bytes_;
    } else {
      g_live_bytes += bytes_;
      report_external(env, bytes_);
    }
  }

  void release(napi_env env) {
    if (!t_.defined()) return;
    g_live_tensors--;
    if (cuda_) {
      g_live_cuda_bytes -= bytes_;
    } else {
      g_live_bytes -= bytes_;
      // The finalizer runs without a usable env; its bytes are reported with the next call that has one.
      report_external(env, -bytes_);
    }
    t_.reset();
    bytes_ = 0;
  }

  Napi::Value Shape(const Napi::CallbackInfo& info) {
    auto& t = Get(info.Env(), info.This(), "shape");
    auto s = t.sizes();
    Napi::Array a = Napi::Array::New(info.Env(), s.size());
    for (size_t i = 0; i < s.size(); i++) a.Set(i, Napi::Number::New(info.Env(), static_cast<double>(s[i])));
    return a;
  }
  Napi::Value Strides(const Napi::CallbackInfo& info) {
    auto& t = Get(info.Env(), info.This(), "strides");
    auto s = t.strides();
    Napi::Array a = Napi::Array::New(info.Env(), s.size());
    for (size_t i = 0; i < s.size(); i++) a.Set(i, Napi::Number::New(info.Env(), static_cast<double>(s[i])));
    return a;
  }
  Napi::Value Dtype(const Napi::CallbackInfo& info) {
    auto& t = Get(info.Env(), info.This(), "dtype");
    return Napi::Number::New(info.Env(), static_cast<int>(t.scalar_type()));
  }
  Napi::Value Device(const Napi::CallbackInfo& info) {
    auto& t = Get(info.Env(), info.This(), "device");
    return Napi::String::New(info.Env(), t.device().str());
  }
  Napi::Value Numel(const Napi::CallbackInfo& info) {
    auto& t = Get(info.Env(), info.This(), "numel");
    return Napi::Number::New(info.Env(), static_cast<double>(t.numel()));
  }
  Napi::Value Dim(const Napi::CallbackInfo& info) {
    auto& t = Get(info.Env(), info.This(), "dim");
    return Napi::Number::New(info.Env(), static_cast<double>(t.dim()));
  }
  Napi::Value RequiresGrad(const Napi::CallbackInfo& info) {
    auto& t = Get(info.Env(), info.This(), "requiresGrad");
    return Napi::Boolean::New(info.Env(), t.requires_grad());
  }
  Napi::Value IsLeaf(const Napi::CallbackInfo& info) {
    auto& t = Get(info.Env(), info.This(), "isLeaf");
    return Napi::Boolean::New(info.Env(), t.is_leaf());
  }
  Napi::Value GradFn(const Napi::CallbackInfo& info) {
    auto& t = Get(info.Env(), info.This(), "gradFn");
    auto fn = t.grad_fn();
    if (!fn) return info.Env().Null();
    return Napi::String::New(info.Env(), fn->name());
  }
  Napi::Value IsContiguous(const Napi::CallbackInfo& info) {
    auto& t = Get(info.Env(), info.This(), "isContiguous");
    bool cl = info.Length() > 0 && info[0].ToBoolean().Value();
    return Napi::Boolean::New(info.Env(),
                              t.is_contiguous(cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
  }
  Napi::Value IsDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !t_.defined()); }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    release(info.Env());
    return info.Env().Undefined();
  }
  // Storage identity, so that JS can tell views of one storage apart (memory accounting, tests).
  Napi::Value DataPtr(const Napi::CallbackInfo& info) {
    auto& t = Get(info.Env(), info.This(), "dataPtr");
    return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(t.data_ptr())));
  }
};

at::Tensor& UnwrapTensor(Napi::Env env, const Napi::Value& v, const char* what) { return Tensor::Get(env, v, what); }
Napi::Object WrapTensor(Napi::Env env, at::Tensor t) { return Tensor::Wrap(env, std::move(t)); }

// ---------------------------------------------------------------- JS <-> IValue
c10::Scalar to_scalar(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (v.IsBoolean()) return c10::Scalar(v.As<Napi::Boolean>().Value());
  if (v.IsBigInt()) {
    bool lossless = false;
    return c10::Scalar(static_cast<int64_t>(v.As<Napi::BigInt>().Int64Value(&lossless)));
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    // Integral JS numbers are ints, as Python literals would be; this keeps integer tensors integral.
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.007199254740992e15)
      return c10::Scalar(static_cast<int64_t>(d));
    return c10::Scalar(d);
  }
  throw Napi::TypeError::New(env, what + ": expected a number");
}

int64_t to_int(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (v.IsBigInt()) {
    bool lossless = false;
    return v.As<Napi::BigInt>().Int64Value(&lossless);
  }
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? 1 : 0;
  if (!v.IsNumber()) throw Napi::TypeError::New(env, what + ": expected an integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != std::floor(d)) throw Napi::TypeError::New(env, what + ": expected an integer, got " + std::to_string(d));
  return static_cast<int64_t>(d);
}

double to_double(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (v.IsBigInt()) {
    bool lossless = false;
    return static_cast<double>(v.As<Napi::BigInt>().Int64Value(&lossless));
  }
  if (!v.IsNumber()) throw Napi::TypeError::New(env, what + ": expected a number");
  return v.As<Napi::Number>().DoubleValue();
}

c10::IValue to_ivalue(Napi::Env env, const Napi::Value& v, const c10::TypePtr& type, const std::string& what,
                      optional<int32_t> n = nullopt);

c10::IValue to_list(Napi::Env env, const Napi::Value& v, const c10::TypePtr& elem, const std::string& what,
                    optional<int32_t> n) {
  std::vector<Napi::Value> items;
  if (v.IsArray()) {
    Napi::Array a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) items.push_back(a.Get(i));
  } else {
    // A single value for int[2] broadcasts, as in Python (stride=2 means (2, 2)).
    for (int32_t i = 0; i < (n.has_value() ? *n : 1); i++) items.push_back(v);
  }
  switch (elem->kind()) {
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType: {
      std::vector<int64_t> r;
      for (auto& x : items) r.push_back(to_int(env, x, what));
      return c10::IValue(r);
    }
    case c10::TypeKind::FloatType: {
      std::vector<double> r;
      for (auto& x : items) r.push_back(to_double(env, x, what));
      return c10::IValue(r);
    }
    case c10::TypeKind::BoolType: {
      c10::List<bool> r;
      for (auto& x : items) r.push_back(x.ToBoolean().Value());
      return c10::IValue(r);
    }
    case c10::TypeKind::TensorType: {
      std::vector<at::Tensor> r;
      for (auto& x : items) r.push_back(Tensor::Get(env, x, what.c_str()));
      return c10::IValue(r);
    }
    case c10::TypeKind::OptionalType: {
      c10::List<optional<at::Tensor>> r;
      for (auto& x : items) {
        if (x.IsNull() || x.IsUndefined())
          r.push_back(nullopt);
        else
          r.push_back(Tensor::Get(env, x, what.c_str()));
      }
      return c10::IValue(r);
    }
    default: {
      c10::impl::GenericList r(elem);
      for (auto& x : items) r.push_back(to_ivalue(env, x, elem, what));
      return c10::IValue(r);
    }
  }
}

c10::IValue to_ivalue(Napi::Env env, const Napi::Value& v, const c10::TypePtr& type, const std::string& what,
                      optional<int32_t> n) {
  switch (type->kind()) {
    case c10::TypeKind::OptionalType:
      if (v.IsNull() || v.IsUndefined()) return c10::IValue();
      return to_ivalue(env, v, type->castRaw<c10::OptionalType>()->getElementType(), what, n);
    case c10::TypeKind::TensorType:
      return c10::IValue(Tensor::Get(env, v, what.c_str()));
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType:
      return c10::IValue(to_int(env, v, what));
    case c10::TypeKind::FloatType:
      return c10::IValue(to_double(env, v, what));
    case c10::TypeKind::BoolType:
      return c10::IValue(v.ToBoolean().Value());
    case c10::TypeKind::NumberType:
      if (Tensor::Is(env, v)) return c10::IValue(Tensor::Get(env, v, what.c_str()).item());
      return c10::IValue(to_scalar(env, v, what));
    case c10::TypeKind::StringType:
      if (!v.IsString()) throw Napi::TypeError::New(env, what + ": expected a string");
      return c10::IValue(v.As<Napi::String>().Utf8Value());
    case c10::TypeKind::DeviceObjType:
      if (!v.IsString()) throw Napi::TypeError::New(env, what + ": expected a device string like 'cpu' or 'cuda:0'");
      return c10::IValue(c10::Device(v.As<Napi::String>().Utf8Value()));
    case c10::TypeKind::ListType:
      return to_list(env, v, type->castRaw<c10::ListType>()->getElementType(), what, n);
    default:
      throw Napi::TypeError::New(env, what + ": unsupported argument type " + type->str());
  }
}

Napi::Value from_ivalue(Napi::Env env, const c10::IValue& v) {
  if (v.isNone()) return env.Null();
  if (v.isTensor()) return Tensor::Wrap(env, v.toTensor());
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isScalar()) {
    auto s = v.toScalar();
    if (s.isBoolean()) return Napi::Boolean::New(env, s.toBool());
    return Napi::Number::New(env, s.toDouble());
  }
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  if (v.isTensorList()) {
    auto l = v.toTensorVector();
    Napi::Array a = Napi::Array::New(env, l.size());
    for (size_t i = 0; i < l.size(); i++) a.Set(i, Tensor::Wrap(env, l[i]));
    return a;
  }
  if (v.isTuple()) {
    auto& el = v.toTupleRef().elements();
    Napi::Array a = Napi::Array::New(env, el.size());
    for (size_t i = 0; i < el.size(); i++) a.Set(i, from_ivalue(env, el[i]));
    return a;
  }
  if (v.isList()) {
    auto l = v.toListRef();
    Napi::Array a = Napi::Array::New(env, l.size());
    for (size_t i = 0; i < l.size(); i++) a.Set(i, from_ivalue(env, l[i]));
    return a;
  }
  throw Napi::Error::New(env, "unsupported return type " + v.tagKind());
}

// ---------------------------------------------------------------- operator calls
struct OpEntry {
  c10::OperatorHandle handle;
  std::string label;
};

// Per thread: each worker thread has its own Node environment and resolves operators itself.
thread_local std::unordered_map<std::string, OpEntry*> g_ops;

OpEntry* find_op(Napi::Env env, const std::string& name, const std::string& overload) {
  std::string key = name + "." + overload;
  auto it = g_ops.find(key);
  if (it != g_ops.end()) return it->second;
  auto h = c10::Dispatcher::singleton().findSchema({name, overload});
  if (!h.has_value()) {
    throw Napi::Error::New(env, "unknown operator " + key + " in this libtorch (" + TORCH_VERSION + ")");
  }
  auto* e = new OpEntry{*h, overload.empty() ? name : key};
  g_ops[key] = e;
  return e;
}

// call(name, overload, args[], kwargs?) -> result. Missing trailing arguments take the schema's defaults.
Napi::Value Call(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  std::string overload = info[1].As<Napi::String>().Utf8Value();
  OpEntry* op = find_op(env, name, overload);
  const auto& schema = op->handle.schema();
  const auto& args = schema.arguments();
  Napi::Array jsargs = info[2].As<Napi::Array>();
  Napi::Object kwargs = info.Length() > 3 && info[3].IsObject() ? info[3].As<Napi::Object>() : Napi::Object();
  if (jsargs.Length() > args.size()) {
    throw Napi::Error::New(env, op->label + ": takes " + std::to_string(args.size()) + " arguments, got " +
                                    std::to_string(jsargs.Length()) + " (" + schema.name() + ")");
  }
  torch::jit::Stack stack;
  stack.reserve(args.size());
  MOCO_TRY
  for (size_t i = 0; i < args.size(); i++) {
    const auto& a = args[i];
    Napi::Value v = env.Undefined();
    if (i < jsargs.Length()) v = jsargs.Get(i);
    if (v.IsUndefined() && !kwargs.IsEmpty() && kwargs.Has(a.name())) v = kwargs.Get(a.name());
    if (v.IsUndefined()) {
      if (a.default_value().has_value()) {
        stack.push_back(*a.default_value());
        continue;
      }
      if (a.type()->kind() == c10::TypeKind::OptionalType) {
        stack.push_back(c10::IValue());
        continue;
      }
      throw Napi::TypeError::New(env, op->label + ": missing argument '" + a.name() + "'");
    }
    stack.push_back(to_ivalue(env, v, a.type(), op->label + " argument '" + a.name() + "'", a.N()));
  }
  op->handle.callBoxed(&stack);
  MOCO_CATCH(env, op->label)
  if (stack.empty()) return env.Undefined();
  if (stack.size() == 1) return from_ivalue(env, stack[0]);
  Napi::Array out = Napi::Array::New(env, stack.size());
  for (size_t i = 0; i < stack.size(); i++) out.Set(i, from_ivalue(env, stack[i]));
  return out;
}

// schema(name, overload) -> string, for error messages and docs.
Napi::Value Schema(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpEntry* op = find_op(env, info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value());
  std::ostringstream s;
  s << op->handle.schema();
  return Napi::String::New(env, s.str());
}

// ---------------------------------------------------------------- data in / out
size_t dtype_size(at::ScalarType st) { return c10::elementSize(st); }

// fromBuffer(typedArrayOrBuffer, shape[], dtypeCode) -> Tensor (a copy; CPU)
Napi::Value FromBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() && !info[0].IsBuffer()) throw Napi::TypeError::New(env, "tensor: data must be a TypedArray or Buffer");
  Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  size_t nbytes = ta.ByteLength();
  const uint8_t* src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  Napi::Array sh = info[1].As<Napi::Array>();
  std::vector<int64_t> shape;
  int64_t numel = 1;
  for (uint32_t i = 0; i < sh.Length(); i++) {
    int64_t d = to_int(env, sh.Get(i), "tensor shape");
    if (d < 0) throw Napi::RangeError::New(env, "tensor: negative dimension " + std::to_string(d));
    shape.push_back(d);
    numel *= d;
  }
  auto st = static_cast<at::ScalarType>(info[2].As<Napi::Number>().Int32Value());
  size_t need = static_cast<size_t>(numel) * dtype_size(st);
  if (need != nbytes) {
    throw Napi::RangeError::New(env, "tensor: shape holds " + std::to_string(numel) + " elements of " +
                                         std::to_string(dtype_size(st)) + " bytes = " + std::to_string(need) +
                                         " bytes, but the data has " + std::to_string(nbytes) + " bytes");
  }
  at::Tensor t;
  MOCO_TRY
  t = at::empty(shape, at::TensorOptions().dtype(st));
  if (need) std::memcpy(t.data_ptr(), src, need);
  MOCO_CATCH(env, "tensor")
  return Tensor::Wrap(env, t);
}

// toBuffer(tensor) -> ArrayBuffer with the elements in row-major order (copied to CPU, contiguous).
Napi::Value ToBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor t = Tensor::Get(env, info[0], "data");
  at::Tensor c;
  MOCO_TRY
  c = t.detach().to(at::kCPU).contiguous();
  MOCO_CATCH(env, "data")
  size_t n = static_cast<size_t>(c.numel()) * c.element_size();
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, n);
  if (n) std::memcpy(ab.Data(), c.data_ptr(), n);
  return ab;
}

// copyInto(tensor, typedArray): overwrite a contiguous CPU tensor's bytes without allocating.
Napi::Value CopyInto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor t = Tensor::Get(env, info[0], "copyFrom");
  Napi::TypedArray ta = info[1].As<Napi::TypedArray>();
  size_t n = static_cast<size_t>(t.numel()) * t.element_size();
  if (!t.is_contiguous() || !t.device().is_cpu()) throw Napi::Error::New(env, "copyFrom: tensor must be contiguous on the CPU");
  if (ta.ByteLength() != n) throw Napi::RangeError::New(env, "copyFrom: expected " + std::to_string(n) + " bytes, got " + std::to_string(ta.ByteLength()));
  std::memcpy(t.data_ptr(), static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), n);
  return env.Undefined();
}

// copyOut(tensor, typedArray): a contiguous CPU tensor's bytes into a caller's array, without allocating.
Napi::Value CopyOut(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor t = Tensor::Get(env, info[0], "copyTo");
  Napi::TypedArray ta = info[1].As<Napi::TypedArray>();
  size_t n = static_cast<size_t>(t.numel()) * t.element_size();
  if (!t.is_contiguous() || !t.device().is_cpu()) throw Napi::Error::New(env, "copyTo: tensor must be contiguous on the CPU");
  if (ta.ByteLength() != n) throw Napi::RangeError::New(env, "copyTo: expected " + std::to_string(n) + " bytes, got " + std::to_string(ta.ByteLength()));
  if (n) std::memcpy(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), t.data_ptr(), n);
  return env.Undefined();
}

// ---------------------------------------------------------------- autograd
Napi::Value Backward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor t = Tensor::Get(env, info[0], "backward");
  bool retain = info.Length() > 2 && info[2].ToBoolean().Value();
  bool create = info.Length() > 3 && info[3].ToBoolean().Value();
  MOCO_TRY
  if (info.Length() > 1 && !info[1].IsNull() && !info[1].IsUndefined()) {
    torch::autograd::backward({t}, {Tensor::Get(env, info[1], "backward gradient")}, retain, create);
  } else {
    torch::autograd::backward({t}, {}, retain, create);
  }
  MOCO_CATCH(env, "backward")
  return env.Undefined();
}

Napi::Value Grad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor t = Tensor::Get(env, info[0], "grad");
  const at::Tensor& g = t.grad();
  if (!g.defined()) return env.Null();
  return Tensor::Wrap(env, g);
}

Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor t = Tensor::Get(env, info[0], "setGrad");
  MOCO_TRY
  if (info[1].IsNull() || info[1].IsUndefined())
    t.mutable_grad().reset();
  else
    t.mutable_grad() = Tensor::Get(env, info[1], "setGrad");
  MOCO_CATCH(env, "setGrad")
  return env.Undefined();
}

Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor t = Tensor::Get(env, info[0], "requiresGrad_");
  MOCO_TRY
  t.set_requires_grad(info[1].ToBoolean().Value());
  MOCO_CATCH(env, "requiresGrad_")
  return env.Undefined();
}

Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  bool prev = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(info[0].ToBoolean().Value());
  return Napi::Boolean::New(info.Env(), prev);
}

Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled());
}

// ---------------------------------------------------------------- runtime
Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  at::manual_seed(static_cast<uint64_t>(to_int(info.Env(), info[0], "manualSeed")));
  return info.Env().Undefined();
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  int n = static_cast<int>(to_int(info.Env(), info[0], "setNumThreads"));
  if (n < 1) throw Napi::RangeError::New(info.Env(), "setNumThreads: need at least 1 thread, got " + std::to_string(n));
  at::set_num_threads(n);
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

Napi::Value Memory(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("tensors", Napi::Number::New(info.Env(), static_cast<double>(g_live_tensors.load())));
  o.Set("bytes", Napi::Number::New(info.Env(), static_cast<double>(g_live_bytes.load())));
  o.Set("cudaBytes", Napi::Number::New(info.Env(), static_cast<double>(g_live_cuda_bytes.load())));
  return o;
}

Napi::Value CudaIsAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), torch::cuda::is_available());
}

Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(torch::cuda::device_count()));
}

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("torch", Napi::String::New(env, TORCH_VERSION));
  o.Set("config", Napi::String::New(env, at::show_config()));
  o.Set("parallel", Napi::String::New(env, at::get_parallel_info()));
  o.Set("cxx11Abi", Napi::Boolean::New(env, _GLIBCXX_USE_CXX11_ABI == 1));
  o.Set("cuda", Napi::Boolean::New(env, at::hasCUDA()));
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Tensor", Tensor::Init(env));
  exports.Set("call", Napi::Function::New(env, Call));
  exports.Set("schema", Napi::Function::New(env, Schema));
  exports.Set("fromBuffer", Napi::Function::New(env, FromBuffer));
  exports.Set("toBuffer", Napi::Function::New(env, ToBuffer));
  exports.Set("copyInto", Napi::Function::New(env, CopyInto));
  exports.Set("copyOut", Napi::Function::New(env, CopyOut));
  exports.Set("backward", Napi::Function::New(env, Backward));
  exports.Set("grad", Napi::Function::New(env, Grad));
  exports.Set("setGrad", Napi::Function::New(env, SetGrad));
  exports.Set("setRequiresGrad", Napi::Function::New(env, SetRequiresGrad));
  exports.Set("setGradEnabled", Napi::Function::New(env, SetGradEnabled));
  exports.Set("isGradEnabled", Napi::Function::New(env, IsGradEnabled));
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads));
  exports.Set("memory", Napi::Function::New(env, Memory));
  exports.Set("cudaIsAvailable", Napi::Function::New(env, CudaIsAvailable));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, CudaDeviceCount));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo));
  InitDist(env, exports);
  InitImage(env, exports);
  InitDevice(env, exports);
  static bool allocator_set = false;
  if (!allocator_set) {
    c10::SetCPUAllocator(&g_cpu_allocator, /*priority=*/10);
    allocator_set = true;
  }
  // libtorch's own default here is one thread; use every core unless the caller says otherwise.
  unsigned hc = std::thread::hardware_concurrency();
  if (hc > 0) at::set_num_threads(static_cast<int>(hc));
  return exports;
}

}  // namespace moco

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return moco::Init(env, exports); }
NODE_API_MODULE(moco_native, InitModule)
