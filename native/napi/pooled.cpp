// Mapped storage for large arrays, in 2 MiB units advised for transparent huge pages: blocks handed to JavaScript as
// ArrayBuffers whose V8 deleter puts them on a free list instead of unmapping them, so that the next step's arrays land
// in pages that are already mapped (first-touch faults cost more than the backward's own time on some VMs). Two kinds
// of request share the blocks: pooledF32, the large float32 outputs of the native kernels (core/pool.ts's fresh
// arrays, contents arbitrary), and mappedBuffer, zeroed buffers for large tensors (core/dtype.ts's allocate: weights
// above all, which decode streams; 4 KiB pages cost it a TLB miss per page). V8 runs backing-store deleters when it
// frees an ArrayBuffer, on any thread and without an event-loop turn; Node-API finalizers wait for the event loop,
// which a synchronous training loop never yields to, so this file reaches V8 directly for that one call.
#include <napi.h>
#include <v8.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <map>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "pooled.hpp"

namespace moekit_napi {
namespace {

constexpr size_t kGrain = size_t(2) << 20;  // mappings are whole 2 MiB units (huge pages where the kernel gives them)

// The mapped size of a buffer of `bytes`.
size_t mapped_size(size_t bytes) { return (bytes + kGrain - 1) / kGrain * kGrain; }

// A zeroed mapping of `bytes` (a multiple of kGrain), huge pages advised before the first touch; nullptr on failure.
void* map_fresh(size_t bytes) {
#if defined(__linux__)
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
#if defined(MADV_HUGEPAGE)
  madvise(p, bytes, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
  return p;
#else
  void* p = ::operator new(bytes, std::nothrow);
  if (p != nullptr) std::memset(p, 0, bytes);
  return p;
#endif
}

class BlockPool {
 public:
  // A block of at least `bytes`: a free one whose mapped size is within 1/8 above it (`*reused`), else a new mapping
  // (zeroed); `*mapped` is its mapped size. nullptr when out of memory.
  void* acquire(size_t bytes, size_t* mapped, bool* reused) {
    const size_t want = mapped_size(bytes);
    {
      std::lock_guard<std::mutex> lk(mu_);
      auto it = free_.lower_bound(want);
      if (it != free_.end() && it->first <= want + want / 8) {
        void* p = it->second.back();
        *mapped = it->first;
        it->second.pop_back();
        if (it->second.empty()) free_.erase(it);
        free_bytes_ -= *mapped;
        live_bytes_ += *mapped;
        *reused = true;
        return p;
      }
    }
    void* p = map_fresh(want);
    if (p == nullptr) return nullptr;
    std::lock_guard<std::mutex> lk(mu_);
    live_bytes_ += want;
    *mapped = want;
    *reused = false;
    return p;
  }

  // A block JavaScript no longer holds (V8's deleter, any thread): kept for reuse within the budget, else unmapped.
  void release(void* p, size_t mapped) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      live_bytes_ -= mapped;
      if (free_bytes_ + mapped <= max_bytes_) {
        free_[mapped].push_back(p);
        free_bytes_ += mapped;
        return;
      }
    }
    unmap(p, mapped);
  }

  void set_max_bytes(size_t bytes) {
    std::lock_guard<std::mutex> lk(mu_);
    max_bytes_ = bytes;
  }

  // Unmaps every free block.
  void trim() {
    std::map<size_t, std::vector<void*>> drop;
    {
      std::lock_guard<std::mutex> lk(mu_);
      drop.swap(free_);
      free_bytes_ = 0;
    }
    for (auto& [mapped, blocks] : drop) {
      for (void* p : blocks) unmap(p, mapped);
    }
  }

  void stats(size_t* free_bytes, size_t* live_bytes) {
    std::lock_guard<std::mutex> lk(mu_);
    *free_bytes = free_bytes_;
    *live_bytes = live_bytes_;
  }

 private:
  static void unmap(void* p, size_t bytes) {
#if defined(__linux__)
    munmap(p, bytes);
#else
    (void)bytes;
    ::operator delete(p);
#endif
  }

  std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;  // by mapped size: acquire takes the smallest that fits
  size_t free_bytes_ = 0, live_bytes_ = 0, max_bytes_ = size_t(2) << 30;
};

// Leaked on purpose: deleters may run on V8's threads while the process exits.
BlockPool& pool() {
  static BlockPool* p = new BlockPool();
  return *p;
}

void on_free(void* data, size_t /*length*/, void* mapped) { pool().release(data, reinterpret_cast<size_t>(mapped)); }

// An ArrayBuffer of `bytes` over `p` (mapped `mapped` bytes) that V8 hands to `deleter` when it frees it.
Napi::ArrayBuffer external_buffer(Napi::Env env, void* p, size_t bytes, size_t mapped, v8::BackingStore::DeleterCallback deleter) {
  std::unique_ptr<v8::BackingStore> store =
      v8::ArrayBuffer::NewBackingStore(p, bytes, deleter, reinterpret_cast<void*>(mapped));
  v8::Local<v8::ArrayBuffer> ab = v8::ArrayBuffer::New(v8::Isolate::GetCurrent(), std::move(store));
  // a v8::Local is what Node-API's napi_value points at (Node's v8impl::JsValueFromV8LocalValue)
  return Napi::ArrayBuffer(env, reinterpret_cast<napi_value>(*ab));
}

double length_arg(const Napi::CallbackInfo& info, const char* fn) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, std::string(fn) + " expects a length");
  const double n = info[0].As<Napi::Number>().DoubleValue();
  if (!(n >= 1 && n <= 1.6e13) || double(int64_t(n)) != n) {
    throw Napi::RangeError::New(env, std::string(fn) + ": length must be a positive integer");
  }
  return n;
}

// pooledF32(n): a Float32Array of n elements on a pooled block; its contents are whatever the block held (the
// callers write every element).
Napi::Value PooledF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const size_t n = size_t(length_arg(info, "pooledF32"));
  const size_t bytes = n * sizeof(float);
  size_t mapped = 0;
  bool reused = false;
  void* p = pool().acquire(bytes, &mapped, &reused);
  if (p == nullptr) throw Napi::Error::New(env, "pooledF32: out of memory mapping " + std::to_string(bytes) + " bytes");
  return Napi::Float32Array::New(env, n, external_buffer(env, p, bytes, mapped, &on_free), 0);
}

// mappedBuffer(bytes): a zeroed ArrayBuffer on a pooled block (cleared when reused): a fresh mapping's faults, and
// the kernel's compaction for its huge pages, cost 10 ms and more per 2 MiB on a fragmented VM, clearing mapped memory
// a fraction of that.
Napi::Value MappedBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const size_t bytes = size_t(length_arg(info, "mappedBuffer"));
  size_t mapped = 0;
  bool reused = false;
  void* p = pool().acquire(bytes, &mapped, &reused);
  if (p == nullptr) throw Napi::Error::New(env, "mappedBuffer: out of memory mapping " + std::to_string(bytes) + " bytes");
  if (reused) std::memset(p, 0, bytes);
  return external_buffer(env, p, bytes, mapped, &on_free);
}

Napi::Value SetPooledMaxBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsNumber() || !(info[0].As<Napi::Number>().DoubleValue() >= 0)) {
    throw Napi::TypeError::New(env, "setPooledMaxBytes expects a byte count");
  }
  pool().set_max_bytes(size_t(info[0].As<Napi::Number>().DoubleValue()));
  return env.Undefined();
}

Napi::Value TrimPooled(const Napi::CallbackInfo& info) {
  pool().trim();
  return info.Env().Undefined();
}

// pooledStats(): { freeBytes, liveBytes } (mapped bytes on the free list, and held by JavaScript).
Napi::Value PooledStats(const Napi::CallbackInfo& info) {
  size_t free_bytes = 0, live_bytes = 0;
  pool().stats(&free_bytes, &live_bytes);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("freeBytes", Napi::Number::New(info.Env(), double(free_bytes)));
  o.Set("liveBytes", Napi::Number::New(info.Env(), double(live_bytes)));
  return o;
}

}  // namespace

void register_pooled(Napi::Env env, Napi::Object exports) {
  exports.Set("pooledF32", Napi::Function::New(env, PooledF32, "pooledF32"));
  exports.Set("mappedBuffer", Napi::Function::New(env, MappedBuffer, "mappedBuffer"));
  exports.Set("setPooledMaxBytes", Napi::Function::New(env, SetPooledMaxBytes, "setPooledMaxBytes"));
  exports.Set("trimPooled", Napi::Function::New(env, TrimPooled, "trimPooled"));
  exports.Set("pooledStats", Napi::Function::New(env, PooledStats, "pooledStats"));
}

}  // namespace moekit_napi
