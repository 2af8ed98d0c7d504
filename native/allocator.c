// moco-ts native binding, allocator part: glibc's malloc tuning knobs, for processes that hold LanceDB.
//
// Why: LanceDB (Rust, on the system allocator) frees its write and index-build buffers into glibc's arenas, one
// arena per thread up to 8 per core, and glibc keeps that memory; a 1M-row index build then stacked on what the
// appends left. Capping the arenas and returning free pages to the OS while LanceDB works are the two calls that
// bound it (docs/collections.md, "Memory at 1M"). A separate addon from moco_native so that LanceDB-only code
// (and its benchmark) does not load libtorch. Where the C library is not glibc every call is a no-op that says so.
#include <node_api.h>

#if defined(__GLIBC__)
#include <malloc.h>
#define HAVE_GLIBC_MALLOC 1
#else
#define HAVE_GLIBC_MALLOC 0
#endif

static napi_value boolean(napi_env env, int b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  return v;
}

// glibc() → true where these calls reach glibc's malloc.
static napi_value Glibc(napi_env env, napi_callback_info info) { return boolean(env, HAVE_GLIBC_MALLOC); }

// The single int argument of a call, >= min; otherwise a RangeError with `usage`, and false.
static int int_arg(napi_env env, napi_callback_info info, int32_t min, const char* usage, int32_t* out) {
  size_t argc = 1;
  napi_value arg;
  napi_get_cb_info(env, info, &argc, &arg, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, arg, out) != napi_ok || *out < min) {
    napi_throw_range_error(env, NULL, usage);
    return 0;
  }
  return 1;
}

// mallopt(param, value) where it is glibc; false elsewhere.
static napi_value set_option(napi_env env, int param, int32_t value) {
#if HAVE_GLIBC_MALLOC
  return boolean(env, mallopt(param, value) == 1);
#else
  (void)param;
  (void)value;
  return boolean(env, 0);
#endif
}

#if !HAVE_GLIBC_MALLOC
#define M_ARENA_MAX 0
#define M_MMAP_THRESHOLD 0
#endif

// setArenaMax(n) → mallopt(M_ARENA_MAX, n). Threads started after it share at most n arenas.
static napi_value SetArenaMax(napi_env env, napi_callback_info info) {
  int32_t n;
  if (!int_arg(env, info, 1, "setArenaMax(n): n must be an integer >= 1", &n)) return NULL;
  return set_option(env, M_ARENA_MAX, n);
}

// setMmapThreshold(bytes) → mallopt(M_MMAP_THRESHOLD, bytes): allocations from this size up get pages of their
// own, returned to the OS when freed (glibc otherwise raises the threshold after each large free, up to 32 MiB).
static napi_value SetMmapThreshold(napi_env env, napi_callback_info info) {
  int32_t n;
  if (!int_arg(env, info, 0, "setMmapThreshold(bytes): bytes must be an integer >= 0", &n)) return NULL;
  return set_option(env, M_MMAP_THRESHOLD, n);
}

// trim() → malloc_trim(0): every arena's free whole pages back to the OS. True when some memory was released.
static napi_value Trim(napi_env env, napi_callback_info info) {
#if HAVE_GLIBC_MALLOC
  return boolean(env, malloc_trim(0) == 1);
#else
  return boolean(env, 0);
#endif
}

static void set_number(napi_env env, napi_value obj, const char* key, double x) {
  napi_value v;
  napi_create_double(env, x, &v);
  napi_set_named_property(env, obj, key, v);
}

// stats() → mallinfo2() in bytes: { arena (heap from sbrk/arenas), mmap (chunks mapped on their own), inUse, free
// (held by malloc, not in use) }, or null where it is not glibc.
static napi_value Stats(napi_env env, napi_callback_info info) {
  napi_value o;
#if HAVE_GLIBC_MALLOC && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 m = mallinfo2();
  napi_create_object(env, &o);
  set_number(env, o, "arena", (double)m.arena);
  set_number(env, o, "mmap", (double)m.hblkhd);
  set_number(env, o, "inUse", (double)m.uordblks);
  set_number(env, o, "free", (double)m.fordblks);
#else
  napi_get_null(env, &o);
#endif
  return o;
}

static void export_fn(napi_env env, napi_value exports, const char* name, napi_callback fn) {
  napi_value f;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f);
  napi_set_named_property(env, exports, name, f);
}

NAPI_MODULE_INIT() {
  export_fn(env, exports, "glibc", Glibc);
  export_fn(env, exports, "setArenaMax", SetArenaMax);
  export_fn(env, exports, "setMmapThreshold", SetMmapThreshold);
  export_fn(env, exports, "trim", Trim);
  export_fn(env, exports, "stats", Stats);
  return exports;
}
