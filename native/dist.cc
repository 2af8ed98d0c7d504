// moco-ts native binding, distributed part: libtorch's c10d stores, process groups and collectives.
//
// Thin on purpose: no training logic, no protocol of our own. A TCPStore does the rendezvous, ProcessGroupGloo
// (CPU) or ProcessGroupNCCL (CUDA) does the collectives, and every wait has a timeout so that a dead or hung
// peer becomes a JS error instead of a frozen process. Collectives return Promises (the wait runs on libuv's
// thread pool, so the event loop keeps serving the data loader) or, with sync=true, wait on the JS thread.
// The same source builds against libtorch 1.13 (ProcessGroupGloo derives from ProcessGroup) and 2.x (from Backend).
#include <napi.h>

#include "tensor.h"

#include <torch/version.h>

// The c10d backend headers are fenced by the macros libtorch was built with; we turn them on when the
// backend's own headers are present (Debian: libgloo-dev; pip/zip libtorch 2.x ship gloo/ in include/).
#if __has_include(<gloo/algorithm.h>)
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#define MOCO_HAVE_GLOO 1
#endif
#if defined(MOCO_WITH_NCCL)
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#define MOCO_HAVE_NCCL 1
#endif

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#ifdef MOCO_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef MOCO_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif

#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace moco {
namespace {

// 2.0 split ProcessGroup into a dispatching ProcessGroup and per-device Backends; the backends keep the
// collective methods with the same signatures.
#if TORCH_VERSION_MAJOR >= 2
using PGBase = c10d::Backend;
#else
using PGBase = c10d::ProcessGroup;
#endif
using WorkPtr = c10::intrusive_ptr<c10d::Work>;
using ms = std::chrono::milliseconds;

std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const c10::Error& x) {
    return x.what_without_backtrace();
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown C++ exception";
  }
}

std::string str_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(what) + ": expected a string");
  return info[i].As<Napi::String>().Utf8Value();
}

int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + ": expected a number");
  return info[i].As<Napi::Number>().Int64Value();
}

std::vector<uint8_t> bytes_of(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

// ---------------------------------------------------------------- promise worker
// Runs `exec` on libuv's thread pool and settles a Promise: resolved with `done(env)`, or rejected with an Error
// whose message is the exception's (prefixed with `label`).
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, std::string label, std::function<void()> exec, std::function<Napi::Value(Napi::Env)> done)
      : Napi::AsyncWorker(env, "moco-dist"),
        deferred_(Napi::Promise::Deferred::New(env)),
        label_(std::move(label)),
        exec_(std::move(exec)),
        done_(std::move(done)) {}

  static Napi::Promise Start(Napi::Env env, std::string label, std::function<void()> exec,
                             std::function<Napi::Value(Napi::Env)> done) {
    auto* w = new PromiseWorker(env, std::move(label), std::move(exec), std::move(done));
    Napi::Promise p = w->deferred_.Promise();
    w->Queue();
    return p;
  }

 protected:
  void Execute() override {
    try {
      exec_();
    } catch (...) {
      SetError(label_ + ": " + what_of(std::current_exception()));
    }
  }
  void OnOK() override {
    Napi::HandleScope scope(Env());
    try {
      deferred_.Resolve(done_ ? done_(Env()) : Env().Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string label_;
  std::function<void()> exec_;
  std::function<Napi::Value(Napi::Env)> done_;
};

// Either runs on the JS thread (sync) or returns a Promise.
Napi::Value run_maybe_async(Napi::Env env, bool sync, const std::string& label, std::function<void()> exec,
                            std::function<Napi::Value(Napi::Env)> done) {
  if (!sync) return PromiseWorker::Start(env, label, std::move(exec), std::move(done));
  try {
    exec();
  } catch (...) {
    throw Napi::Error::New(env, label + ": " + what_of(std::current_exception()));
  }
  return done ? done(env) : env.Undefined();
}

// ---------------------------------------------------------------- heartbeat
// A background thread that publishes "<count> <note>" under a store key every interval, on its own store
// connection, so that peers can tell a dead rank (count frozen) from a slow one even while this rank's JS thread
// is busy computing. The note is what JS last said this rank was doing (e.g. "allReduce #12").
struct Heartbeat {
  std::mutex m;
  std::condition_variable cv;
  bool stop = false;
  bool exited = false;
  std::string note;
};

std::mutex g_hb_mutex;
std::vector<std::shared_ptr<Heartbeat>> g_heartbeats;

// At exit, stop the heartbeat threads before libtorch's statics are destroyed under them.
void stop_all_heartbeats() {
  std::vector<std::shared_ptr<Heartbeat>> all;
  {
    std::lock_guard<std::mutex> l(g_hb_mutex);
    all = g_heartbeats;
  }
  for (auto& h : all) {
    std::unique_lock<std::mutex> l(h->m);
    h->stop = true;
    h->cv.notify_all();
    h->cv.wait_for(l, ms(200), [&] { return h->exited; });
  }
}

// ---------------------------------------------------------------- Store
class Store : public Napi::ObjectWrap<Store> {
 public:
  // Per thread: the main thread and each worker thread are separate Node environments (leaked on purpose:
  // a thread_local reference would be released after its environment is gone).
  static thread_local Napi::FunctionReference* ctor;

  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NativeStore",
                       {
                           InstanceMethod("set", &Store::Set),
                           InstanceMethod("get", &Store::Get),
                           InstanceMethod("tryGet", &Store::TryGet),
                           InstanceMethod("add", &Store::Add),
                           InstanceMethod("check", &Store::Check),
                           InstanceMethod("setTimeout", &Store::SetTimeout),
                           InstanceMethod("port", &Store::Port),
                           InstanceMethod("startHeartbeat", &Store::StartHeartbeat),
                           InstanceMethod("heartbeatNote", &Store::HeartbeatNote),
                           InstanceMethod("stopHeartbeat", &Store::StopHeartbeat),
                       });
  }

  explicit Store(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Store>(info) {}
  ~Store() override { stop_heartbeat(); }

  c10::intrusive_ptr<c10d::Store> store;
  std::string host;
  uint16_t port = 0;
  int64_t timeout_ms = 300000;
  std::shared_ptr<Heartbeat> hb;

  static Store* From(Napi::Env env, const Napi::Value& v) {
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(ctor->Value())) throw Napi::TypeError::New(env, "expected a NativeStore");
    return Store::Unwrap(v.As<Napi::Object>());
  }

 private:
  void stop_heartbeat() {
    if (!hb) return;
    {
      std::lock_guard<std::mutex> l(hb->m);
      hb->stop = true;
    }
    hb->cv.notify_all();
    hb.reset();
  }

  template <class F>
  auto guard(Napi::Env env, const std::string& label, F f) -> decltype(f()) {
    try {
      return f();
    } catch (...) {
      throw Napi::Error::New(env, label + ": " + what_of(std::current_exception()));
    }
  }

  Napi::Value Set(const Napi::CallbackInfo& info) {
    std::string k = str_arg(info, 0, "store.set key"), v = str_arg(info, 1, "store.set value");
    guard(info.Env(), "store set '" + k + "'", [&] { store->set(k, bytes_of(v)); });
    return info.Env().Undefined();
  }
  // Blocks until the key exists or the store's timeout passes.
  Napi::Value Get(const Napi::CallbackInfo& info) {
    std::string k = str_arg(info, 0, "store.get key");
    auto b = guard(info.Env(), "store get '" + k + "'", [&] { return store->get(k); });
    return Napi::String::New(info.Env(), std::string(b.begin(), b.end()));
  }
  // The value, or null if the key does not exist yet; never waits for it.
  Napi::Value TryGet(const Napi::CallbackInfo& info) {
    std::string k = str_arg(info, 0, "store.tryGet key");
    return guard(info.Env(), "store get '" + k + "'", [&]() -> Napi::Value {
      if (!store->check({k})) return info.Env().Null();
      auto b = store->get(k);
      return Napi::String::New(info.Env(), std::string(b.begin(), b.end()));
    });
  }
  Napi::Value Add(const Napi::CallbackInfo& info) {
    std::string k = str_arg(info, 0, "store.add key");
    int64_t d = int_arg(info, 1, "store.add value");
    int64_t r = guard(info.Env(), "store add '" + k + "'", [&] { return store->add(k, d); });
    return Napi::Number::New(info.Env(), static_cast<double>(r));
  }
  Napi::Value Check(const Napi::CallbackInfo& info) {
    if (!info[0].IsArray()) throw Napi::TypeError::New(info.Env(), "store.check: expected an array of keys");
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<std::string> keys;
    for (uint32_t i = 0; i < a.Length(); i++) keys.push_back(a.Get(i).As<Napi::String>().Utf8Value());
    bool r = guard(info.Env(), "store check", [&] { return store->check(keys); });
    return Napi::Boolean::New(info.Env(), r);
  }
  Napi::Value SetTimeout(const Napi::CallbackInfo& info) {
    int64_t t = int_arg(info, 0, "store.setTimeout");
    store->setTimeout(ms(t));
    return info.Env().Undefined();
  }
  Napi::Value Port(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), port); }

  // startHeartbeat(key, intervalMs): publish under key on a second connection to the same TCPStore.
  Napi::Value StartHeartbeat(const Napi::CallbackInfo& info) {
    std::string key = str_arg(info, 0, "startHeartbeat key");
    int64_t interval = int_arg(info, 1, "startHeartbeat interval");
    stop_heartbeat();
    hb = std::make_shared<Heartbeat>();
    {
      std::lock_guard<std::mutex> l(g_hb_mutex);
      static bool registered = false;
      if (!registered) {
        std::atexit(stop_all_heartbeats);
        registered = true;
      }
      g_heartbeats.push_back(hb);
    }
    auto h = hb;
    std::string host_ = host;
    uint16_t port_ = port;
    int64_t tmo = timeout_ms;
    std::thread([h, key, interval, host_, port_, tmo] {
      c10::intrusive_ptr<c10d::Store> s;
      int64_t count = 0;
      std::unique_lock<std::mutex> l(h->m);
      while (!h->stop) {
        std::string value = std::to_string(count++) + " " + h->note;
        l.unlock();
        try {
          if (!s) {
            c10d::TCPStoreOptions o;
            o.port = port_;
            o.isServer = false;
            o.waitWorkers = false;
            o.timeout = ms(tmo);
            s = c10::make_intrusive<c10d::TCPStore>(host_, o);
          }
          s->set(key, bytes_of(value));
        } catch (...) {
          s.reset();  // the master is gone or restarting; peers will see this rank's count frozen anyway
        }
        l.lock();
        h->cv.wait_for(l, ms(interval), [&] { return h->stop; });
      }
      h->exited = true;
      h->cv.notify_all();
      l.unlock();
      // Closing the connection at exit must not take the process down.
      try {
        s.reset();
      } catch (...) {
      }
    }).detach();
    return info.Env().Undefined();
  }
  Napi::Value HeartbeatNote(const Napi::CallbackInfo& info) {
    if (hb) {
      std::string n = str_arg(info, 0, "heartbeatNote");
      std::lock_guard<std::mutex> l(hb->m);
      hb->note = std::move(n);
    }
    return info.Env().Undefined();
  }
  Napi::Value StopHeartbeat(const Napi::CallbackInfo& info) {
    stop_heartbeat();
    return info.Env().Undefined();
  }
};
thread_local Napi::FunctionReference* Store::ctor = nullptr;

// connectStore(host, port, isServer, timeoutMs) -> Promise<NativeStore>. The server side listens on port (0: any
// free port, see store.port()); clients retry connecting until the timeout.
Napi::Value ConnectStore(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string host = str_arg(info, 0, "connectStore host");
  int64_t port = int_arg(info, 1, "connectStore port");
  bool server = info[2].ToBoolean().Value();
  int64_t timeout = int_arg(info, 3, "connectStore timeout");
  if (port < 0 || port > 65535) throw Napi::RangeError::New(env, "connectStore: port must be in 0..65535, got " + std::to_string(port));
  auto made = std::make_shared<c10::intrusive_ptr<c10d::TCPStore>>();
  std::string label = std::string(server ? "listening as the master" : "connecting to the master") + " at " + host + ":" +
                      std::to_string(port);
  return PromiseWorker::Start(
      env, label,
      [=] {
        c10d::TCPStoreOptions o;
        o.port = static_cast<uint16_t>(port);
        o.isServer = server;
        o.waitWorkers = false;  // joining is checked in JS, with messages that name the missing ranks
        o.timeout = ms(timeout);
        *made = c10::make_intrusive<c10d::TCPStore>(host, o);
      },
      [=](Napi::Env e) -> Napi::Value {
        Napi::Object o = Store::ctor->New({});
        Store* s = Store::Unwrap(o);
        s->store = *made;
        s->host = host;
        s->port = (*made)->getPort();
        s->timeout_ms = timeout;
        return o;
      });
}

// ---------------------------------------------------------------- differentiable all-reduce
// The sum over every rank of a tensor, with autograd: each rank's input gradient is the sum of every rank's output
// gradient (torch.distributed.nn.functional.all_reduce). SyncBatchNorm's statistics go through it, so the
// gradient of a rank's loss reaches the samples of the other ranks. Backward runs the collective on the thread that
// called backward(); every rank must run the same graph, as with PyTorch's SyncBatchNorm.
struct AllReduceSum : public torch::autograd::Function<AllReduceSum> {
  static void reduce(const c10::intrusive_ptr<PGBase>& pg, at::Tensor& t, int64_t timeout) {
    std::vector<at::Tensor> ts{t};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = ms(timeout);
    if (!pg->allreduce(ts, o)->wait(ms(timeout))) TORCH_CHECK(false, "the operation was aborted");
  }
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, c10::intrusive_ptr<PGBase> pg,
                            int64_t timeout) {
    ctx->saved_data["pg"] = c10::IValue::make_capsule(pg);
    ctx->saved_data["timeout"] = timeout;
    at::Tensor y = x.clone(at::MemoryFormat::Contiguous);
    reduce(pg, y, timeout);
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto pg = c10::static_intrusive_pointer_cast<PGBase>(ctx->saved_data["pg"].toCapsule());
    at::Tensor g = grads[0].clone(at::MemoryFormat::Contiguous);
    reduce(pg, g, ctx->saved_data["timeout"].toInt());
    return {g, at::Tensor(), at::Tensor()};
  }
};

// ---------------------------------------------------------------- ProcessGroup
class ProcessGroup : public Napi::ObjectWrap<ProcessGroup> {
 public:
  static thread_local Napi::FunctionReference* ctor;

  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NativeProcessGroup",
                       {
                           InstanceMethod("rank", &ProcessGroup::Rank),
                           InstanceMethod("size", &ProcessGroup::Size),
                           InstanceMethod("backend", &ProcessGroup::BackendName),
                           InstanceMethod("allReduce", &ProcessGroup::AllReduce),
                           InstanceMethod("allReduceSumGrad", &ProcessGroup::AllReduceSumGrad),
                           InstanceMethod("allGather", &ProcessGroup::AllGather),
                           InstanceMethod("broadcast", &ProcessGroup::Broadcast),
                           InstanceMethod("barrier", &ProcessGroup::Barrier),
                       });
  }

  explicit ProcessGroup(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProcessGroup>(info) {}

  c10::intrusive_ptr<PGBase> pg;
  std::string backend;
  int rank = 0, size = 1;

 private:
  std::vector<at::Tensor> tensors_arg(Napi::Env env, const Napi::Value& v, const char* what) {
    std::vector<at::Tensor> r;
    if (v.IsArray()) {
      Napi::Array a = v.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) r.push_back(UnwrapTensor(env, a.Get(i), what));
    } else {
      r.push_back(UnwrapTensor(env, v, what));
    }
    return r;
  }

  static void wait(const WorkPtr& w, int64_t timeout) {
    if (!w->wait(ms(timeout))) TORCH_CHECK(false, "the operation was aborted");
  }

  Napi::Value Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), rank); }
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), size); }
  Napi::Value BackendName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), backend); }

  // allReduce(tensors, op 'sum'|'avg'|'max'|'min'|'product', timeoutMs, label, sync): in place, on every tensor.
  // 'avg' is a sum divided by the world size after the wait (Gloo has no AVG).
  Napi::Value AllReduce(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto ts = tensors_arg(env, info[0], "allReduce");
    std::string op = str_arg(info, 1, "allReduce op");
    int64_t timeout = int_arg(info, 2, "allReduce timeout");
    std::string label = str_arg(info, 3, "allReduce label");
    bool sync = info[4].ToBoolean().Value();
    c10d::AllreduceOptions o;
    o.timeout = ms(timeout);
    bool avg = false;
    if (op == "sum")
      o.reduceOp = c10d::ReduceOp::SUM;
    else if (op == "avg" || op == "mean")
      o.reduceOp = c10d::ReduceOp::SUM, avg = true;
    else if (op == "max")
      o.reduceOp = c10d::ReduceOp::MAX;
    else if (op == "min")
      o.reduceOp = c10d::ReduceOp::MIN;
    else if (op == "product")
      o.reduceOp = c10d::ReduceOp::PRODUCT;
    else
      throw Napi::TypeError::New(env, "allReduce: unknown op '" + op + "' (sum, avg, max, min, product)");
    auto pgp = pg;
    int n = size;
    return run_maybe_async(
        env, sync, label,
        [pgp, ts, o, timeout, avg, n]() mutable {
          wait(pgp->allreduce(ts, o), timeout);
          if (avg)
            for (auto& t : ts) t.div_(n);
        },
        nullptr);
  }

  // allReduceSumGrad(tensor, timeoutMs, label) -> Tensor: a new tensor, the sum over ranks, differentiable
  // (AllReduceSum); on the JS thread.
  Napi::Value AllReduceSumGrad(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    at::Tensor t = UnwrapTensor(env, info[0], "allReduceSumGrad");
    int64_t timeout = int_arg(info, 1, "allReduceSumGrad timeout");
    std::string label = str_arg(info, 2, "allReduceSumGrad label");
    auto pgp = pg;
    at::Tensor out;
    return run_maybe_async(
        env, true, label, [pgp, t, timeout, &out] { out = AllReduceSum::apply(t, pgp, timeout); },
        [&out](Napi::Env e) -> Napi::Value { return WrapTensor(e, out); });
  }

  // allGather(tensor, timeoutMs, label, sync) -> Tensor[] (one per rank, in rank order).
  Napi::Value AllGather(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    at::Tensor t = UnwrapTensor(env, info[0], "allGather");
    int64_t timeout = int_arg(info, 1, "allGather timeout");
    std::string label = str_arg(info, 2, "allGather label");
    bool sync = info[3].ToBoolean().Value();
    auto pgp = pg;
    int n = size;
    auto out = std::make_shared<std::vector<at::Tensor>>();
    return run_maybe_async(
        env, sync, label,
        [pgp, t, timeout, n, out] {
          std::vector<at::Tensor> in{t.contiguous()};
          std::vector<std::vector<at::Tensor>> outs(1);
          for (int i = 0; i < n; i++) outs[0].push_back(at::empty_like(in[0]));
          c10d::AllgatherOptions o;
          o.timeout = ms(timeout);
          wait(pgp->allgather(outs, in, o), timeout);
          *out = outs[0];
        },
        [out](Napi::Env e) -> Napi::Value {
          Napi::Array a = Napi::Array::New(e, out->size());
          for (size_t i = 0; i < out->size(); i++) a.Set(i, WrapTensor(e, (*out)[i]));
          return a;
        });
  }

  // broadcast(tensors, root, timeoutMs, label, sync): in place, root's values everywhere.
  Napi::Value Broadcast(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto ts = tensors_arg(env, info[0], "broadcast");
    int64_t root = int_arg(info, 1, "broadcast root");
    int64_t timeout = int_arg(info, 2, "broadcast timeout");
    std::string label = str_arg(info, 3, "broadcast label");
    bool sync = info[4].ToBoolean().Value();
    if (root < 0 || root >= size) throw Napi::RangeError::New(env, "broadcast: root " + std::to_string(root) + " is not a rank of " + std::to_string(size));
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.timeout = ms(timeout);
    auto pgp = pg;
    return run_maybe_async(
        env, sync, label, [pgp, ts, o, timeout]() mutable { wait(pgp->broadcast(ts, o), timeout); }, nullptr);
  }

  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int64_t timeout = int_arg(info, 0, "barrier timeout");
    std::string label = str_arg(info, 1, "barrier label");
    bool sync = info[2].ToBoolean().Value();
    c10d::BarrierOptions o;
    o.timeout = ms(timeout);
    auto pgp = pg;
    return run_maybe_async(
        env, sync, label, [pgp, o, timeout] { wait(pgp->barrier(o), timeout); }, nullptr);
  }
};
thread_local Napi::FunctionReference* ProcessGroup::ctor = nullptr;

// newProcessGroup(store, rank, size, backend 'gloo'|'nccl', timeoutMs, {prefix, ifnames[], hostname}) ->
// Promise<NativeProcessGroup>. Resolves once every rank has connected (the backend's own full-mesh rendezvous).
Napi::Value NewProcessGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Store* st = Store::From(env, info[0]);
  int rank = static_cast<int>(int_arg(info, 1, "newProcessGroup rank"));
  int size = static_cast<int>(int_arg(info, 2, "newProcessGroup size"));
  std::string backend = str_arg(info, 3, "newProcessGroup backend");
  int64_t timeout = int_arg(info, 4, "newProcessGroup timeout");
  Napi::Object opts = info.Length() > 5 && info[5].IsObject() ? info[5].As<Napi::Object>() : Napi::Object::New(env);
  std::string prefix = opts.Has("prefix") ? opts.Get("prefix").As<Napi::String>().Utf8Value() : backend;
  std::vector<std::string> ifnames;
  if (opts.Has("ifnames") && opts.Get("ifnames").IsArray()) {
    Napi::Array a = opts.Get("ifnames").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) ifnames.push_back(a.Get(i).As<Napi::String>().Utf8Value());
  }
  std::string hostname = opts.Has("hostname") && opts.Get("hostname").IsString() ? opts.Get("hostname").As<Napi::String>().Utf8Value() : "";
  if (rank < 0 || size < 1 || rank >= size)
    throw Napi::RangeError::New(env, "newProcessGroup: need 0 <= rank < size, got rank " + std::to_string(rank) + ", size " + std::to_string(size));
  auto store = c10::make_intrusive<c10d::PrefixStore>(prefix, st->store);
  auto made = std::make_shared<c10::intrusive_ptr<PGBase>>();
  std::function<void()> exec;
  if (backend == "gloo") {
#ifdef MOCO_HAVE_GLOO
    exec = [=] {
      auto o = c10d::ProcessGroupGloo::Options::create(ms(timeout));
      for (auto& n : ifnames) o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(n));
      if (o->devices.empty())
        o->devices.push_back(hostname.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                                              : c10d::ProcessGroupGloo::createDeviceForHostname(hostname));
      o->threads = 2;
      *made = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, o);
    };
#else
    throw Napi::Error::New(env, "newProcessGroup: this build of moco-ts has no Gloo: the gloo headers were missing when it was compiled "
                                "(Debian/Ubuntu: apt-get install libgloo-dev, then npm run build:native)");
#endif
  } else if (backend == "nccl") {
#ifdef MOCO_HAVE_NCCL
    exec = [=] {
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = ms(timeout);
      *made = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, o);
    };
#else
    throw Napi::Error::New(env, "newProcessGroup: this build of moco-ts has no NCCL (it needs libtorch with CUDA and nccl.h when compiling); use backend 'gloo'");
#endif
  } else {
    throw Napi::TypeError::New(env, "newProcessGroup: unknown backend '" + backend + "' (gloo, nccl)");
  }
  return PromiseWorker::Start(env, "creating the " + backend + " process group (rank " + std::to_string(rank) + " of " + std::to_string(size) + ")",
                              exec, [=](Napi::Env e) -> Napi::Value {
                                Napi::Object o = ProcessGroup::ctor->New({});
                                ProcessGroup* p = ProcessGroup::Unwrap(o);
                                p->pg = *made;
                                p->backend = backend;
                                p->rank = rank;
                                p->size = size;
                                return o;
                              });
}

Napi::Value DistInfo(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
#ifdef MOCO_HAVE_GLOO
  o.Set("gloo", true);
#else
  o.Set("gloo", false);
#endif
#ifdef MOCO_HAVE_NCCL
  o.Set("nccl", true);
#else
  o.Set("nccl", false);
#endif
  return o;
}

}  // namespace

void InitDist(Napi::Env env, Napi::Object exports) {
  Napi::Object d = Napi::Object::New(env);
  Napi::Function store = Store::Init(env);
  Napi::Function pg = ProcessGroup::Init(env);
  Store::ctor = new Napi::FunctionReference(Napi::Persistent(store));
  ProcessGroup::ctor = new Napi::FunctionReference(Napi::Persistent(pg));
  d.Set("connectStore", Napi::Function::New(env, ConnectStore));
  d.Set("newProcessGroup", Napi::Function::New(env, NewProcessGroup));
  d.Set("info", Napi::Function::New(env, DistInfo));
  exports.Set("dist", d);
}

}  // namespace moco
